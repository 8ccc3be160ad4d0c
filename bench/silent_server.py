#!/usr/bin/env python3
"""A target that never answers: accepts every connection on 127.0.0.1:PORT, reads and
discards what the client sends, never writes a byte, and closes when the client does.
Used by bench/run.sh for the mass-outage run. Exits by itself after --lifetime seconds.

    silent_server.py --port 28098 --lifetime 300
"""
import argparse
import asyncio
import resource


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(4096):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(port: int, lifetime: float) -> None:
    server = await asyncio.start_server(hold, "127.0.0.1", port, backlog=4096)
    async with server:
        await asyncio.sleep(lifetime)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lifetime", type=float, required=True)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    asyncio.run(main(args.port, min(args.lifetime, 3600.0)))
