"""Stand-in for the unpublished `norman-utils-external` package (norman-core 0.1.0 depends on it, but
the package registry has no release of it). Written for the benchmark from the documented behaviour
of the two helpers SocketClient uses: read a stream in chunks (awaiting `read` when it is a coroutine
function, as for aiofiles), pass each chunk to a processor, yield it; and chain byte streams."""

import asyncio
from typing import Protocol


class AsyncBufferedReader(Protocol):
    async def read(self, size: int) -> bytes: ...


class StreamingUtils:
    @staticmethod
    async def chain_streams(*streams):
        for stream in streams:
            if hasattr(stream, "__aiter__"):
                async for chunk in stream:
                    yield chunk
            else:
                for chunk in stream:
                    yield chunk

    @staticmethod
    async def process_read_stream(file_stream, processor, chunk_size, yield_processed=True):
        while True:
            if asyncio.iscoroutinefunction(file_stream.read):
                chunk = await file_stream.read(chunk_size)
            else:
                chunk = file_stream.read(chunk_size)
            if not chunk:
                return
            result = processor(chunk)
            yield result if yield_processed else chunk
