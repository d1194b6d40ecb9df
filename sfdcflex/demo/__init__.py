"""The demo: stand-ins for Salesforce, IAM and Sync, their demo data, and the agent panel."""
