"""The local stack: moto server as AWS, provisioned from template.yaml, with the functions run in-process."""
