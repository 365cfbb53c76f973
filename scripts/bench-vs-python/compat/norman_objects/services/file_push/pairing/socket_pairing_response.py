"""Stand-in for the unpublished `norman-objects` package (see ../README): the fields of
docs/schemas/norman_objects.json, as pydantic models."""

from pydantic import BaseModel


class SocketPairingResponse(BaseModel):
    pairing_id: str
    host: str
    port: int
    encryption_key: str
    nonce: str
    authentication_header: str
