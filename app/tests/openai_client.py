"""The official `openai` Python client against `monovlm serve`.

Usage: python3 openai_client.py BASE_URL EXPECTED_JSON
EXPECTED_JSON holds: image (path), prompt, max_tokens, text (the greedy answer), prompt_tokens.
Run by app/tests/serve.rs (`openai_python_client`).
"""

import base64
import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        want = json.load(f)
    with open(want["image"], "rb") as f:
        url = "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")

    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    models = [m.id for m in client.models.list()]
    assert len(models) == 1, models
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": want["prompt"]},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]

    r = client.chat.completions.create(
        model=models[0], messages=messages, max_tokens=want["max_tokens"], temperature=0
    )
    got = r.choices[0].message.content
    assert got == want["text"], (got, want["text"])
    assert r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason
    assert r.usage.prompt_tokens == want["prompt_tokens"], r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage

    stream = client.chat.completions.create(
        model=models[0],
        messages=messages,
        max_tokens=want["max_tokens"],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    assert "".join(pieces) == want["text"], (pieces, want["text"])
    assert finish == r.choices[0].finish_reason, finish
    assert usage is not None and usage.prompt_tokens == want["prompt_tokens"], usage

    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
        raise AssertionError("an unknown model must fail")
    except Exception as e:  # openai.NotFoundError
        assert getattr(e, "status_code", None) == 404, e

    print("openai client: ok")


if __name__ == "__main__":
    main()
