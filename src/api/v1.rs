//! `/v1`: the SOC's view of the state — cases with their obligations and evidence,
//! entities with their state per system and timeline, lineage up and down, alerts in
//! time order, the inventory of every entity — read from the committed state ([`StateView`]). Errors are JSON
//! `{"error": …}` with 400 (a bad parameter, naming it) or 404 (nothing by that id).
//! Store reads run on the blocking pool.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{error, Shared};
use crate::sink::case_json;
use crate::store::view::{CaseFilter, CaseState, InventoryFilter, StateView};
use crate::time::Micros;

/// The largest page a request may ask for.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// The `/v1` routes.
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/cases", get(cases))
        .route("/v1/cases/{id}", get(case))
        .route("/v1/entities/{id}", get(entity))
        .route("/v1/lineage/{id}", get(lineage))
        .route("/v1/alerts", get(alerts))
        .route("/v1/inventory", get(inventory))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(super::openapi::document()) }),
        )
}

type Params = Query<HashMap<String, String>>;

/// A refusal: its status and a message naming the problem.
struct ApiError(StatusCode, String);

impl ApiError {
    fn not_found(what: String) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, what)
    }
}

fn view(s: &Shared) -> Result<&StateView, ApiError> {
    s.view
        .as_ref()
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "no state is open here: with [kafka] assignment = \"group\" each state shard is a directory of its own (STATE/shard-N), which lockstep serve --state opens".into()))
}

fn bad(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "reading the state failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "reading the state failed".into(),
    )
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad(format!(
                "limit {v:?}: expected an integer from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

fn instant(q: &HashMap<String, String>, key: &str) -> Result<Option<Micros>, ApiError> {
    q.get(key)
        .map(|v| Micros::parse(v).map_err(|e| bad(format!("{key}: {e}"))))
        .transpose()
}

fn only(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(format!(
            "unknown parameter {k:?}: expected {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A case as evidence, with where it stands.
pub fn case_view(case: &crate::model::case::Case) -> Value {
    let mut v = case_json(case);
    v["state"] = json!(CaseState::of(case));
    v
}

async fn cases(State(s): State<Shared>, Query(q): Params) -> Response {
    let run = move || -> Result<Value, ApiError> {
        only(&q, &["state", "system", "since", "limit", "cursor"])?;
        let filter = CaseFilter {
            state: q
                .get("state")
                .map(|v| CaseState::parse(v))
                .transpose()
                .map_err(bad)?,
            system: q
                .get("system")
                .map(|v| crate::event::System::parse(v))
                .transpose()
                .map_err(bad)?,
            since: instant(&q, "since")?,
        };
        let (page, next) = view(&s)?
            .cases(&filter, q.get("cursor").map(String::as_str), limit(&q)?)
            .map_err(internal)?;
        Ok(json!({
            "cases": page.iter().map(case_view).collect::<Vec<_>>(),
            "next_cursor": next,
        }))
    };
    respond(run).await
}

async fn case(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let run = move || -> Result<Value, ApiError> {
        match view(&s)?.case(&id).map_err(internal)? {
            Some(c) => Ok(case_view(&c)),
            None => Err(ApiError::not_found(format!("no case {id}"))),
        }
    };
    respond(run).await
}

async fn entity(State(s): State<Shared>, Path(id): Path<String>, Query(q): Params) -> Response {
    let run = move || -> Result<Value, ApiError> {
        only(&q, &["limit"])?;
        let v = view(&s)?;
        if !v.knows(&id).map_err(internal)? {
            return Err(ApiError::not_found(format!("no entity {id}")));
        }
        let row = v.entity(&id).map_err(internal)?.unwrap_or_default();
        let lineage = v.lineage_row(&id).map_err(internal)?;
        Ok(json!({
            "entity": id,
            "kind": row.kind,
            "states": v.states(&id).map_err(internal)?,
            "open_cases": row.cases,
            "parent": lineage.parent,
            "children": lineage.children,
            "timeline": v.history(&id, limit(&q)?).map_err(internal)?,
        }))
    };
    respond(run).await
}

async fn lineage(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let run = move || -> Result<Value, ApiError> {
        let v = view(&s)?;
        if !v.knows(&id).map_err(internal)? {
            return Err(ApiError::not_found(format!("no entity {id}")));
        }
        lineage_json(v, &id).map_err(internal)
    };
    respond(run).await
}

/// An entity's lineage: its ancestors (nearest first) with their state per system, and
/// the tree of its descendants; `ancestors_truncated` and `tree_truncated` say whether
/// either was cut at its limit ([`crate::store::view::MAX_LINEAGE_NODES`] ancestors; the
/// tree's depth and size, its cut nodes marked `truncated`).
pub fn lineage_json(v: &StateView, id: &str) -> Result<Value, crate::error::StoreError> {
    let (ancestors, ancestors_truncated) = v.ancestors(id)?;
    let ancestors = ancestors
        .into_iter()
        .map(|a| {
            let kind = v.entity(&a)?.and_then(|r| r.kind);
            Ok(json!({"entity": a, "kind": kind, "states": v.states(&a)?}))
        })
        .collect::<Result<Vec<_>, crate::error::StoreError>>()?;
    let tree = v.descendants(id)?;
    Ok(json!({
        "entity": id,
        "as_of": v.clock()?,
        "ancestors": ancestors,
        "ancestors_truncated": ancestors_truncated,
        "tree_truncated": tree.cut(),
        "tree": tree,
    }))
}

/// `true` or `false` (absent: false).
fn flag(q: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(bad(format!("{key} {other:?}: expected true or false"))),
    }
}

async fn inventory(State(s): State<Shared>, Query(q): Params) -> Response {
    let run = move || -> Result<Value, ApiError> {
        only(
            &q,
            &[
                "drift",
                "unregistered",
                "active",
                "kind",
                "system",
                "limit",
                "cursor",
            ],
        )?;
        let filter = InventoryFilter {
            drift: flag(&q, "drift")?,
            unregistered: flag(&q, "unregistered")?,
            active: flag(&q, "active")?,
            kind: q
                .get("kind")
                .map(|v| crate::event::EntityKind::parse(v))
                .transpose()
                .map_err(bad)?,
            system: q
                .get("system")
                .map(|v| crate::event::System::parse(v))
                .transpose()
                .map_err(bad)?,
            system_of_record: s.system_of_record,
        };
        let limit = limit(&q)?;
        let mut entries = view(&s)?
            .inventory(filter, q.get("cursor").map(String::as_str))
            .map_err(internal)?;
        let page = entries
            .by_ref()
            .take(limit)
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let more = page.len() == limit && entries.next().transpose().map_err(internal)?.is_some();
        let next = page.last().filter(|_| more).map(|e| e.entity.clone());
        Ok(json!({"entities": page, "next_cursor": next}))
    };
    respond(run).await
}

async fn alerts(State(s): State<Shared>, Query(q): Params) -> Response {
    let run = move || -> Result<Value, ApiError> {
        only(&q, &["since", "limit", "cursor"])?;
        let cursor = q.get("cursor").map(String::as_str);
        if cursor.is_some_and(|c| crate::alert::unhex(c).is_none()) {
            return Err(bad("cursor: not a cursor this API returned".into()));
        }
        let (page, next) = view(&s)?
            .alerts(instant(&q, "since")?, cursor, limit(&q)?)
            .map_err(internal)?;
        Ok(json!({"alerts": page, "next_cursor": next}))
    };
    respond(run).await
}

/// Runs a handler's store reads on the blocking pool, so a long scan never holds up
/// another request (health probes above all), and answers with its JSON or error.
async fn respond(run: impl FnOnce() -> Result<Value, ApiError> + Send + 'static) -> Response {
    let answer = tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|e| Err(internal(e)));
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(ApiError(status, message)) => error(status, &message),
    }
}
