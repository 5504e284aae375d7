"""The throwaway S3 server of the tests: :mod:`local_services.object_store` (``scripts/cluster`` starts it too)."""

from local_services.object_store import BUCKET, ObjectStore, ObjectStoreMissing

__all__ = ["BUCKET", "ObjectStore", "ObjectStoreMissing"]
