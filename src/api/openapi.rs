//! The OpenAPI 3.0 document of the HTTP API, served at `/v1/openapi.json`. Every
//! response schema is closed (`additionalProperties: false`) and `tests/api.rs`
//! validates real answers of every route against it, so a field a handler adds or drops
//! without this document fails the tests: the two cannot drift apart.

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
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": "string", "format": "date-time", "nullable": true});
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let system = json!({"type": "string", "enum": ["iam", "vault", "mdm", "siem"]});
    let state = json!({"type": "string", "enum": ["active", "revoked"]});
    let kinds: Vec<&str> = crate::alert::AlertKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let entity_kinds: Vec<&str> = crate::event::EntityKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let actions: Vec<&str> = crate::event::Action::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    let closed = |required: Vec<&str>, properties: Value| json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    let rotation_round = closed(
        vec!["rotated_at", "origin", "holders"],
        json!({
            "rotated_at": time,
            "origin": system,
            "holders": {"type": "array", "items": closed(vec!["entity", "system", "deadline", "status"], json!({
                "entity": string,
                "system": system,
                "deadline": time,
                "status": {"type": "string", "enum": ["pending", "followed", "missed", "released"]},
                "echoed_at": time,
            }))},
        }),
    );
    let alert = closed(
        vec!["alert_id", "kind", "severity", "root", "at", "detail"],
        json!({
            "alert_id": string,
            "kind": {"type": "string", "enum": kinds},
            "severity": {"type": "string", "enum": ["critical", "high", "medium", "low"]},
            "case_id": string, "root": string, "entity": string, "entities": strings,
            "system": system,
            "systems": {"type": "array", "items": system},
            "origin_system": system,
            "revoked_at": time, "issued_at": time, "last_active_at": time,
            "rotated_entity": string, "rotated_at": time, "first_seen": time,
            "deadline": time, "at": time,
            "latency_ms": {"type": "integer"},
            "event_id": string, "detail": string,
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lockstep",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Cases, entities, lineage, alerts and the inventory of the lockstep correlator (SPEC §3). A bearer token is required unless the listener is loopback.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: consumer assigned, outbox resent", "security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "starting"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (the token is needed only with [api] metrics_auth = true)", "security": [{}, {"bearer": []}], "responses": {"200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
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
            "/v1/inventory": {"get": {
                "summary": "Every entity in key order: kind, root, parent, state per system, first seen, creator, ages, the case in force",
                "parameters": [
                    param("drift", "query", "only entities active in one system and revoked in another", json!({"type": "boolean"})),
                    param("unregistered", "query", "only entities that neither they nor an ancestor have a state in the system of record (SPEC §4c)", json!({"type": "boolean"})),
                    param("active", "query", "only entities active in some system", json!({"type": "boolean"})),
                    param("kind", "query", "only entities of this kind", json!({"type": "string", "enum": entity_kinds})),
                    param("system", "query", "only entities with a state in this system", system.clone()),
                    limit.clone(), cursor.clone(),
                ],
                "responses": ok("a page of the inventory", "InventoryPage"),
            }},
            "/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.0"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "BadRequest": {"description": "a bad parameter, named", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unauthorized": {"description": "missing or wrong bearer token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "NotFound": {"description": "nothing by that id", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
            "schemas": {
                "Error": closed(vec!["error"], json!({"error": string})),
                "Obligation": closed(vec!["system", "deadline", "status"], json!({
                    "system": system, "deadline": time,
                    "status": {"type": "string", "enum": ["pending", "met", "missing", "late"]},
                    "entities": {"type": "array", "items": {"type": "string"}, "nullable": true},
                    "echoed_at": nullable_time,
                    "event_id": {"type": "string", "nullable": true},
                })),
                "Case": closed(vec!["case_id", "root", "revoked_at", "origin_system", "state", "obligations"], json!({
                    "case_id": string, "root": string, "root_kind": {"type": "string", "enum": entity_kinds},
                    "revoked_at": time, "origin_system": system,
                    "opened_by": string, "superseded_at": nullable_time,
                    "state": {"type": "string", "enum": ["open", "breached", "complete", "superseded"]},
                    "obligations": {"type": "array", "items": {"$ref": "#/components/schemas/Obligation"}},
                })),
                "CasePage": closed(vec!["cases", "next_cursor"], json!({
                    "cases": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}},
                    "next_cursor": {"type": "string", "nullable": true},
                })),
                "SystemState": closed(vec!["system", "state"], json!({
                    "system": system,
                    "state": {"type": "string", "enum": ["none", "active", "revoked"]},
                    "since": time,
                })),
                "TimelineEntry": closed(vec!["event_id", "system", "time", "action", "outcome"], json!({
                    "event_id": string, "system": system, "time": time,
                    "action": {"type": "string", "enum": actions},
                    "outcome": {"type": "string", "enum": ["success", "failure"]},
                    "actor": {"type": "string", "nullable": true},
                })),
                "Entity": closed(vec!["entity", "states", "open_cases", "children", "timeline"], json!({
                    "entity": string,
                    "kind": {"type": "string", "enum": entity_kinds, "nullable": true},
                    "states": {"type": "array", "items": {"$ref": "#/components/schemas/SystemState"}},
                    "open_cases": strings,
                    "parent": {"type": "string", "nullable": true},
                    "children": strings,
                    "timeline": {"type": "array", "items": {"$ref": "#/components/schemas/TimelineEntry"}},
                })),
                "Ancestor": closed(vec!["entity", "states"], json!({
                    "entity": string,
                    "kind": {"type": "string", "enum": entity_kinds, "nullable": true},
                    "states": {"type": "array", "items": {"$ref": "#/components/schemas/SystemState"}},
                })),
                "LineageNode": closed(vec!["entity", "states", "cases"], json!({
                    "entity": string,
                    "kind": {"type": "string", "enum": entity_kinds, "nullable": true},
                    "states": {"type": "array", "items": {"$ref": "#/components/schemas/SystemState"}},
                    "cases": strings,
                    "issued_at": time,
                    "last_active_at": time,
                    "rotation": {"$ref": "#/components/schemas/RotationRound"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/LineageNode"}},
                    "truncated": {"type": "boolean"},
                })),
                "RotationRound": rotation_round,
                "Lineage": closed(vec!["entity", "ancestors", "ancestors_truncated", "tree", "tree_truncated"], json!({
                    "entity": string,
                    "as_of": nullable_time,
                    "ancestors": {"type": "array", "items": {"$ref": "#/components/schemas/Ancestor"}},
                    "ancestors_truncated": {"type": "boolean", "description": "the chain goes on above the last ancestor given (10,000 at most)"},
                    "tree_truncated": {"type": "boolean", "description": "some node of the tree has children not shown (depth 40, 10,000 nodes); those nodes are marked truncated"},
                    "tree": {"$ref": "#/components/schemas/LineageNode"},
                })),
                "Alert": alert,
                "InventoryEntry": closed(vec!["entity", "entity_kind", "root", "parent", "states", "first_seen", "issued_at", "last_active_at", "created_by", "open_case", "registered"], json!({
                    "entity": string,
                    "entity_kind": {"type": "string", "enum": entity_kinds, "nullable": true},
                    "root": string,
                    "parent": {"type": "string", "nullable": true},
                    "states": {"type": "object", "additionalProperties": false, "properties": {
                        "iam": state, "vault": state, "mdm": state, "siem": state,
                    }},
                    "first_seen": nullable_time, "issued_at": nullable_time, "last_active_at": nullable_time,
                    "created_by": {"type": "string", "nullable": true},
                    "open_case": {"type": "string", "nullable": true},
                    "registered": {"type": "boolean"},
                })),
                "InventoryPage": closed(vec!["entities", "next_cursor"], json!({
                    "entities": {"type": "array", "items": {"$ref": "#/components/schemas/InventoryEntry"}},
                    "next_cursor": {"type": "string", "nullable": true},
                })),
                "AlertPage": closed(vec!["alerts", "next_cursor"], json!({
                    "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                    "next_cursor": {"type": "string", "nullable": true},
                })),
            },
        },
    })
}
