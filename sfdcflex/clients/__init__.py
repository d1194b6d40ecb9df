"""One small client per outside service (Twilio IAM, Salesforce, Twilio Sync) over `transport`."""
