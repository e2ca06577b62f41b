"""The platform event stream: parsing, ingestion from Kafka, files or the simulator."""
