//! The OpenAPI 3.0 document of the HTTP API, served at `/v1/openapi.json`.

use serde_json::{json, Value};

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": location,
        "required": location == "path",
        "description": description,
        "schema": schema,
    })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "200": {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
        },
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/NotFound"},
    })
}

/// The document.
pub fn document() -> Value {
    let limit = param(
        "limit",
        "query",
        "page size, 1 to 1000 (default 100)",
        json!({"type": "integer", "minimum": 1, "maximum": 1000}),
    );
    let cursor = param(
        "cursor",
        "query",
        "next_cursor of the previous page",
        json!({"type": "string"}),
    );
    let since = |what: &str| {
        param(
            "since",
            "query",
            &format!("only {what} at or after this RFC 3339 instant"),
            json!({"type": "string", "format": "date-time"}),
        )
    };
    let id = |what: &str| param("id", "path", what, json!({"type": "string"}));
    let any_object = json!({"type": "object", "additionalProperties": true});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lockstep",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Cases, entities, lineage and alerts of the lockstep correlator (SPEC §3). A bearer token is required unless the listener is loopback.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: consumer assigned, outbox resent", "security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "starting"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/v1/cases": {"get": {
                "summary": "Cases, filtered, in pages",
                "parameters": [
                    param("state", "query", "where the case stands", json!({"type": "string", "enum": ["open", "breached", "complete", "superseded"]})),
                    param("system", "query", "only cases opened in or owed by this system", json!({"type": "string", "enum": ["iam", "vault", "mdm", "siem"]})),
                    since("cases revoked"), limit.clone(), cursor.clone(),
                ],
                "responses": ok("a page of cases", "CasePage"),
            }},
            "/v1/cases/{id}": {"get": {
                "summary": "One case: per-system obligation, deadline, echo time, evidence event ids",
                "parameters": [id("case id")],
                "responses": ok("the case", "Case"),
            }},
            "/v1/entities/{id}": {"get": {
                "summary": "One entity: state per system, open cases, parent, children, timeline",
                "parameters": [id("entity id"), limit.clone()],
                "responses": ok("the entity", "Entity"),
            }},
            "/v1/lineage/{id}": {"get": {
                "summary": "Lineage: ancestors and the tree of descendants, each with its state per system",
                "parameters": [id("entity id")],
                "responses": ok("the lineage", "Lineage"),
            }},
            "/v1/alerts": {"get": {
                "summary": "Alerts in time order",
                "parameters": [since("alerts raised"), limit, cursor],
                "responses": ok("a page of alerts", "AlertPage"),
            }},
            "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "BadRequest": {"description": "a bad parameter, named", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unauthorized": {"description": "missing or wrong bearer token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "NotFound": {"description": "nothing by that id", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Obligation": {"type": "object", "properties": {
                    "system": {"type": "string"}, "deadline": {"type": "string", "format": "date-time"},
                    "status": {"type": "string", "enum": ["pending", "met", "missing", "late"]},
                    "entities": {"type": "array", "items": {"type": "string"}, "nullable": true},
                    "echoed_at": {"type": "string", "format": "date-time", "nullable": true},
                    "event_id": {"type": "string", "nullable": true},
                }},
                "Case": {"type": "object", "properties": {
                    "case_id": {"type": "string"}, "root": {"type": "string"}, "root_kind": {"type": "string"},
                    "revoked_at": {"type": "string", "format": "date-time"}, "origin_system": {"type": "string"},
                    "opened_by": {"type": "string"}, "superseded_at": {"type": "string", "format": "date-time", "nullable": true},
                    "state": {"type": "string", "enum": ["open", "breached", "complete", "superseded"]},
                    "obligations": {"type": "array", "items": {"$ref": "#/components/schemas/Obligation"}},
                }},
                "CasePage": {"type": "object", "properties": {
                    "cases": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}},
                    "next_cursor": {"type": "string", "nullable": true},
                }},
                "Entity": any_object.clone(),
                "Lineage": any_object.clone(),
                "AlertPage": {"type": "object", "properties": {
                    "alerts": {"type": "array", "items": any_object},
                    "next_cursor": {"type": "string", "nullable": true},
                }},
            },
        },
    })
}
