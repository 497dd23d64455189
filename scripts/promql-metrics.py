"""Parses PromQL expressions as Prometheus does (the `promql-parser` package: Python
bindings of the Rust crate of the same name, a port of Prometheus's own parser) and
names the metrics each one selects.

Reads a JSON object {name: expr} on stdin; prints {name: [metric, ...]} as JSON, or the
parse errors (exit 1)."""

import json
import sys

import promql_parser


def selected(expr):
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.MatrixSelector):
            node = node.vector_selector
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(expr, pre_visit=visit)
    return sorted(names)


def main():
    exprs = json.load(sys.stdin)
    out, errors = {}, []
    for name, text in exprs.items():
        try:
            out[name] = selected(promql_parser.parse(text))
        except Exception as e:  # the parser raises ValueError with Prometheus's message
            errors.append(f"{name}: {e}")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(json.dumps(out))


main()
