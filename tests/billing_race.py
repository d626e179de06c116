"""Many priced requests at once, spread over several gateways: the status code of each."""

from __future__ import annotations

import asyncio

import openai

from tests.test_billing import HI


def race(urls: list[str], key: str, n: int, model: str = "metered", max_tokens: int = 5) -> list[int]:
    async def run():
        clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60) for url in urls]

        async def one(i):
            try:
                await clients[i % len(clients)].chat.completions.create(model=model, messages=HI, max_tokens=max_tokens)
                return 200
            except openai.APIStatusError as err:
                return err.status_code

        try:
            return await asyncio.gather(*[one(i) for i in range(n)])
        finally:
            for client in clients:
                await client.close()

    return asyncio.run(run())
