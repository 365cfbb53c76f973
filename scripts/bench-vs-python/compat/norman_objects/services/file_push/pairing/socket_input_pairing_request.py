"""Stand-in for the unpublished `norman-objects` package (see ../README): the fields of
docs/schemas/norman_objects.json, as pydantic models."""

from pydantic import BaseModel


class SocketInputPairingRequest(BaseModel):
    account_id: str
    model_id: str
    file_size_in_bytes: int
    invocation_id: str
    input_id: str
