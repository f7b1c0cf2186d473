#!/usr/bin/env python3
"""The official `openai` Python package against a running `tandem serve`, unchanged: completions and chat,
streamed and not, n > 1, logprobs, stop strings, the API key, and a refusal read as the package's own exception.

  openai_client_check.py BASE_URL API_KEY MODEL
      prints one JSON object with what the client read (the Swift test compares it with the server's own
      answers); exits non-zero with the exception if the client cannot read a response.
"""
import json
import sys

import openai


def main():
    base_url, api_key, model = sys.argv[1:4]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
    result = {}

    completion = client.completions.create(model=model, prompt="the model", max_tokens=8, temperature=0, n=2)
    result["completion"] = [choice.text for choice in completion.choices]
    result["completion_finish"] = [choice.finish_reason for choice in completion.choices]
    result["completion_usage"] = [completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens]

    streamed = client.completions.create(model=model, prompt="the model", max_tokens=8, temperature=0, stream=True,
                                         stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in streamed:
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage:
            usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
    result["completion_streamed"] = text
    result["completion_streamed_usage"] = usage

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    chat = client.chat.completions.create(model=model, messages=messages, max_completion_tokens=10, temperature=0)
    result["chat"] = chat.choices[0].message.content
    result["chat_role"] = chat.choices[0].message.role

    streamed_chat = client.chat.completions.create(model=model, messages=messages, max_completion_tokens=10, temperature=0, stream=True)
    result["chat_streamed"] = "".join(chunk.choices[0].delta.content or "" for chunk in streamed_chat if chunk.choices)

    scored = client.completions.create(model=model, prompt="the model", max_tokens=8, temperature=0, logprobs=3)
    logprobs = scored.choices[0].logprobs
    result["completion_logprobs"] = {"text": scored.choices[0].text, "tokens": logprobs.tokens, "token_logprobs": logprobs.token_logprobs,
                                     "top_logprobs": logprobs.top_logprobs, "text_offset": logprobs.text_offset}
    streamed_scores = client.completions.create(model=model, prompt="the model", max_tokens=8, temperature=0, logprobs=3, stream=True)
    tokens = []
    for chunk in streamed_scores:
        if chunk.choices and chunk.choices[0].logprobs:
            tokens += chunk.choices[0].logprobs.tokens
    result["completion_streamed_tokens"] = tokens

    scored_chat = client.chat.completions.create(model=model, messages=messages, max_completion_tokens=6, temperature=0, logprobs=True,
                                                 top_logprobs=2)
    result["chat_logprobs"] = [{"token": entry.token, "logprob": entry.logprob, "bytes": entry.bytes,
                                "top": [[top.token, top.logprob] for top in entry.top_logprobs]}
                               for entry in scored_chat.choices[0].logprobs.content]
    result["chat_logprobs_text"] = scored_chat.choices[0].message.content

    stopped = client.completions.create(model=model, prompt="the model", max_tokens=8, temperature=0, stop=[result["completion"][0][2:4]])
    result["stopped"] = stopped.choices[0].text
    result["stopped_finish"] = stopped.choices[0].finish_reason

    try:
        client.completions.create(model=model, prompt="x", max_tokens=0)
        result["refusal"] = None
    except openai.BadRequestError as error:
        result["refusal"] = [error.status_code, error.body.get("param") if isinstance(error.body, dict) else None]

    try:
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
        result["wrong_key"] = None
    except openai.AuthenticationError as error:
        result["wrong_key"] = error.status_code

    result["models"] = [entry.id for entry in client.models.list()]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
