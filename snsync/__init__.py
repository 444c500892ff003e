"""snsync: keep ServiceNow users and groups in step with an Azure AD (Entra ID) app assignment."""

__version__ = "0.1.0"
