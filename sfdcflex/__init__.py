"""sfdcflex: the server side of the Flex <-> Salesforce CRM integration, in pure-stdlib Python."""

__version__ = "0.1.0"
