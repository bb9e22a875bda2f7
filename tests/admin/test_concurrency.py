"""20 clients at once against a real server: reports created concurrently get distinct numbers, one delivery
delivered by everyone is one report, and of many people acting on the same case one wins and the rest get 409."""

from __future__ import annotations

import asyncio

import aiohttp

CLIENTS = 20
SHARED = 4


async def test_twenty_concurrent_clients(live_server):
    base, tokens = live_server
    auth = {"Authorization": f"Bearer {tokens['op']}"}

    async with aiohttp.ClientSession(base, headers=auth) as http:

        async def report(ref: str) -> tuple[int, dict]:
            body = {"channel": "operator", "channel_ref": ref, "text": "路边垃圾堆", "address": "人民路88号"}
            async with http.post("/api/v1/reports", json=body) as resp:
                return resp.status, await resp.json()

        shared = [(await report(f"shared-{i}"))[1]["case"] for i in range(SHARED)]

        async def client(n: int) -> list[tuple[str, int, dict]]:
            out = []
            for i in range(3):
                status, body = await report(f"c{n}-{i}")
                out.append(("report", status, body))
            status, body = await report("everyone")
            out.append(("everyone", status, body))
            for number in shared:
                async with http.post(f"/api/v1/cases/{number}/actions/accept", json={"matter_code": "06010"}) as r:
                    out.append((number, r.status, await r.json()))
            return out

        results = [x for batch in await asyncio.gather(*(client(n) for n in range(CLIENTS))) for x in batch]

        created = [b["case"] for kind, s, b in results if kind == "report"]
        assert all(s == 201 for kind, s, _ in results if kind == "report")
        assert len(created) == CLIENTS * 3 == len(set(created))
        everyone = [(s, b) for kind, s, b in results if kind == "everyone"]
        assert sorted(s for s, _ in everyone) == [200] * (CLIENTS - 1) + [201]
        assert len({b["report_id"] for _, b in everyone}) == 1
        # a repeat that arrives while the first delivery is still being filed sees the report without its case yet
        assert len({b["case"] for _, b in everyone if b["case"]}) == 1
        for number in shared:
            statuses = sorted(s for kind, s, _ in results if kind == number)
            assert statuses == [200] + [409] * (CLIENTS - 1), (number, statuses)
            assert all("error" in b for kind, s, b in results if kind == number and s == 409)
            async with http.get(f"/api/v1/cases/{number}") as resp:
                case = await resp.json()
            assert [e["action"] for e in case["events"]] == ["report", "accept"]
            assert [e["seq"] for e in case["events"]] == [1, 2] and case["version"] == 2
        async with http.get("/api/v1/cases", params={"limit": 500}) as resp:
            listed = await resp.json()
        numbers = [c["number"] for c in listed["cases"]]
        assert listed["total"] == SHARED + CLIENTS * 3 + 1 == len(set(numbers))
