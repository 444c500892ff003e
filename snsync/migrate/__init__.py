"""`snsync import-schema`: read an exported Entra synchronization schema and write snsync's
config with the same behaviour, listing whatever could not be carried over."""
