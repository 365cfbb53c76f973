"""Stand-in for the unpublished `norman-objects` package (see ../README): the fields of
docs/schemas/norman_objects.json, as pydantic models."""

from pydantic import BaseModel


class ChecksumRequest(BaseModel):
    pairing_id: str
    checksum: str
