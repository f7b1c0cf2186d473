#!/usr/bin/env python3
"""Independent reference for Tandem's chat templates: the `jinja2` package, configured as transformers'
`apply_chat_template` configures it (an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension, a `tojson` filter that is `json.dumps(ensure_ascii=False, ...)` without HTML escaping,
and a `raise_exception` global).

  chat_template_reference.py CASES.json
      CASES.json: {"template": "...", "cases": [{"messages": [...], "tools": [...] or null,
                   "add_generation_prompt": bool, "special_tokens": {"bos_token": ..., ...}}, ...]}
      prints a JSON list with, for each case, {"text": rendered} or {"error": message}.
      CASES.json may also be a list of such objects (several templates in one run); the output is then a list
      of those lists.
"""
import json
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRaised(Exception):
    pass


def raise_exception(message):
    raise TemplateRaised(message)


def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def render_all(environment, request):
    try:
        template = environment.from_string(request["template"])
    except jinja2.TemplateError as error:
        return [{"error": "syntax: " + str(error)} for _ in request["cases"]]
    results = []
    for case in request["cases"]:
        try:
            text = template.render(messages=case["messages"], tools=case.get("tools"),
                                   add_generation_prompt=case["add_generation_prompt"], **case.get("special_tokens", {}))
            results.append({"text": text})
        except TemplateRaised as raised:
            results.append({"error": "raised: " + str(raised)})
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError) as error:
            results.append({"error": type(error).__name__ + ": " + str(error)})
    return results


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        request = json.load(file)
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    if isinstance(request, list):
        json.dump([render_all(environment, item) for item in request], sys.stdout, ensure_ascii=False)
    else:
        json.dump(render_all(environment, request), sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
