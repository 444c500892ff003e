"""A local ServiceNow instance for the sandbox: Table, Stats and Batch APIs and `/oauth_token.do`,
with ServiceNow's value formats, roles, business rules, paging headers and error shapes.

It is the only ServiceNow the tests and benchmarks see, so it answers the way a real instance does
(docs/sandbox-servicenow.md lists what is faithful and the known differences). One module per job:

- `app`: the `App` that routes a request and holds the limits together
- `auth`: Basic, bearer tokens and `/oauth_token.do`; `tokens`: issued tokens
- `routes`: Table and Stats API handlers; `batch`: the Batch API
- `store`: records, indexes and business rules; `schema`: the built-in tables
- `loader`: instance fixtures; `acl`: accounts and role access
- `render`: display values, links, fields; `values`: stored value formats
- `pool`: the API semaphore and rate-limit rules; `failure`: error answers
"""

from snsync.sandbox.servicenow.app import ServiceNowApp
from snsync.sandbox.servicenow.loader import load_instance_file
from snsync.sandbox.servicenow.routes import DEFAULT_LIMIT
from snsync.sandbox.servicenow.schema import SYSTEM_FIELDS, TABLES, FieldSpec, TableSpec

__all__ = [
    "DEFAULT_LIMIT",
    "SYSTEM_FIELDS",
    "TABLES",
    "FieldSpec",
    "ServiceNowApp",
    "TableSpec",
    "load_instance_file",
]
