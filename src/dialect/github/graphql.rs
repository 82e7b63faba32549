//! GitHub's GraphQL API for deploy keys (`viewer`, `repository { deployKeys }`) over REST's core calls.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    ComplexObject, Context, EmptyMutation, EmptySubscription, ErrorExtensions, ID, Object, Request,
    Schema, ServerError, SimpleObject, Variables,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::auth;
use super::error::{DOCS_GRAPHQL, GhError, Reply, gh_json};
use super::wire::{bare_key, node_id};
use crate::core::{Core, Error, LinkedKey, Principal, RepoRef, Window};
use crate::dialect::iso_seconds;
use crate::http::{self, BodyError, State, blocking, request_id};

/// GitHub's bounds on `first` and `last`.
const MAX_PAGE: i32 = 100;
/// Deep enough for the standard introspection query, shallow enough to refuse abuse.
const MAX_DEPTH: usize = 24;
/// Every field costs 1 and each field that reads the database (`repository`, `deployKeys`) 50 more, so one query
/// makes at most about 20 trips however many aliases it uses; introspection costs a few hundred.
const MAX_COMPLEXITY: usize = 1000;
/// Cursor text before the position; versioned so the scheme can change without ambiguity.
const CURSOR_PREFIX: &str = "cursor:v1:";
/// The largest position a cursor may name (the REST pages stop there too).
const MAX_POSITION: u64 = 1 << 40;
/// Client text echoed into messages is cut to this many characters.
const ECHO_CHARS: usize = 100;

type GhSchema = Schema<Query, EmptyMutation, EmptySubscription>;

static SCHEMA: LazyLock<GhSchema> = LazyLock::new(|| {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
});

/// What every resolver needs: the core and the caller, authenticated once per request.
struct Caller {
    core: Core,
    who: Principal,
    request_id: String,
}

/// `POST /api/graphql` and `POST /graphql`. The token is checked before the body is looked at,
/// as GitHub does; what goes wrong inside a query is answered 200 with `errors`, as GitHub does.
pub(super) async fn graphql(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let who = auth::run(&req, &state, DOCS_GRAPHQL, |_, who| Ok(who.clone())).await?;
    let body = http::read_body(payload)
        .await
        .map_err(|e| GhError::Body(e, DOCS_GRAPHQL))?;
    let request = match parse_request(&body)? {
        Ok(request) => request,
        Err(message) => {
            return Ok(gh_json(
                StatusCode::OK,
                &json!({"errors": [{"message": message}]}),
            ));
        }
    };
    let caller = Caller {
        core: state.core.clone(),
        who,
        request_id: request_id(&req),
    };
    let response = SCHEMA.execute(request.data(caller)).await;
    Ok(gh_json(StatusCode::OK, &render(response)))
}

/// The POST body GitHub reads: `{"query", "variables", "operationName"}`. Malformed JSON is a 400;
/// a body without a query string is answered in-band, with GitHub's message.
fn parse_request(body: &[u8]) -> Result<Result<Request, &'static str>, GhError> {
    let bad_json = || GhError::Body(BodyError::BadJson, DOCS_GRAPHQL);
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad_json());
    };
    let Some(Value::String(query)) = fields.remove("query") else {
        return Ok(Err(
            "A query attribute must be specified and must be a string.",
        ));
    };
    let mut request = Request::new(query);
    match fields.remove("variables") {
        None | Some(Value::Null) => {}
        Some(vars @ Value::Object(_)) => request = request.variables(Variables::from_json(vars)),
        // Some clients send the variables as a JSON string.
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(vars @ Value::Object(_)) => request = request.variables(Variables::from_json(vars)),
            _ => return Err(bad_json()),
        },
        Some(_) => return Err(bad_json()),
    }
    match fields.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => return Err(bad_json()),
    }
    Ok(Ok(request))
}

/// async-graphql's response in GitHub's shape: `type` beside `message`, not inside
/// `extensions`; no `data` at all when the query never ran (a parse or validation error, which
/// has no path); and failed fields nulled as the GraphQL spec says (see `null_failed_field`).
fn render(response: async_graphql::Response) -> Value {
    let mut out = Map::new();
    let ran = response.data != async_graphql::Value::Null
        || response.errors.iter().any(|e| !e.path.is_empty());
    if ran {
        let mut data = match serde_json::to_value(&response.data) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => Value::Object(Map::new()),
        };
        for err in &response.errors {
            if let Ok(Value::Array(path)) = serde_json::to_value(&err.path) {
                null_failed_field(&mut data, &path);
            }
        }
        out.insert("data".into(), data);
    }
    if !response.errors.is_empty() {
        let errors = response.errors.into_iter().map(error_entry).collect();
        out.insert("errors".into(), Value::Array(errors));
    }
    Value::Object(out)
}

/// async-graphql leaves a failed field out of its object; GitHub answers it as `null`, and a
/// failed non-null field nulls its parent. In this schema the fields that can fail are
/// `repository` (nullable, on the root) and `deployKeys` (non-null, on a nullable Repository), so
/// a failed root field becomes `null` and a failed deeper field nulls the object holding it.
fn null_failed_field(data: &mut Value, path: &[Value]) {
    let target = match path {
        [_] => path,
        [parent @ .., _] => parent,
        [] => return,
    };
    let mut at = data;
    for segment in target {
        let next = match (at, segment) {
            (Value::Object(map), Value::String(key)) => {
                map.entry(key.clone()).or_insert(Value::Null)
            }
            (Value::Array(items), Value::Number(n)) => {
                match n
                    .as_u64()
                    .and_then(|i| items.get_mut(usize::try_from(i).ok()?))
                {
                    Some(item) => item,
                    None => return,
                }
            }
            // Already null higher up: nothing below is left to null.
            _ => return,
        };
        at = next;
    }
    *at = Value::Null;
}

fn error_entry(err: ServerError) -> Value {
    let mut entry = Map::new();
    let mut extensions = match err.extensions.as_ref().map(serde_json::to_value) {
        Some(Ok(Value::Object(ext))) => ext,
        _ => Map::new(),
    };
    if let Some(kind) = extensions.remove("type") {
        entry.insert("type".into(), kind);
    }
    if !err.path.is_empty() {
        entry.insert(
            "path".into(),
            serde_json::to_value(&err.path).unwrap_or(Value::Null),
        );
    }
    if !err.locations.is_empty() {
        let locations = err
            .locations
            .iter()
            .map(|p| json!({"line": p.line, "column": p.column}))
            .collect();
        entry.insert("locations".into(), Value::Array(locations));
    }
    if !extensions.is_empty() {
        entry.insert("extensions".into(), Value::Object(extensions));
    }
    entry.insert("message".into(), Value::String(err.message));
    Value::Object(entry)
}

/// An error entry with GitHub's `type`.
fn typed(kind: &'static str, message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("type", kind))
}

/// A core failure inside a resolver, in GitHub's words; internal ones are logged, not shown.
fn core_error(
    caller: &Caller,
    err: Error,
    not_found: impl FnOnce() -> String,
) -> async_graphql::Error {
    match err {
        Error::NotFound(_) => typed("NOT_FOUND", not_found()),
        Error::Forbidden(_) | Error::InsufficientScope => typed(
            "FORBIDDEN",
            "Must have admin rights to Repository.".to_string(),
        ),
        Error::Busy => typed(
            "SERVICE_UNAVAILABLE",
            "Service Unavailable: try again shortly.".to_string(),
        ),
        other => {
            http::log_internal(&caller.request_id, &other);
            async_graphql::Error::new(format!(
                "Something went wrong while executing your query. Please include `{}` when \
                 reporting this issue.",
                caller.request_id
            ))
        }
    }
}

fn echo(text: &str) -> String {
    text.chars().take(ECHO_CHARS).collect()
}

pub(super) struct Query;

#[Object]
impl Query {
    /// The user the token belongs to.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let user = &ctx.data::<Caller>()?.who.user;
        Ok(Viewer {
            login: user.username.clone(),
            id: ID(node_id("User", user.id)),
            // keygate users have no display name; GitHub's `name` is null until one is set.
            name: None,
        })
    }

    /// A repository the caller is a member of (or any, for an instance admin), by its two-level
    /// path `owner/name`.
    #[graphql(complexity = "50 + child_complexity")]
    async fn repository(
        &self,
        ctx: &Context<'_>,
        owner: String,
        name: String,
    ) -> async_graphql::Result<Option<RepositoryNode>> {
        let caller = ctx.data::<Caller>()?;
        let not_found = || {
            format!(
                "Could not resolve to a Repository with the name '{}/{}'.",
                echo(&owner),
                echo(&name)
            )
        };
        // Exactly two levels, as in REST: nested repositories are out of reach.
        let valid = |s: &str| !s.is_empty() && !s.contains('/');
        if !valid(&owner) || !valid(&name) {
            return Err(typed("NOT_FOUND", not_found()));
        }
        let path = format!("{owner}/{name}");
        let (core, who, repo) = (caller.core.clone(), caller.who.clone(), RepoRef::Path(path));
        let found = blocking(move || core.repository(&who, &repo))
            .await
            .map_err(|err| core_error(caller, err, not_found))?;
        Ok(Some(RepositoryNode {
            id: ID(node_id("Repository", found.id)),
            name: found.name.clone(),
            name_with_owner: found.full_path.clone(),
            repo_id: found.id,
        }))
    }
}

#[derive(SimpleObject)]
#[graphql(name = "User")]
struct Viewer {
    login: String,
    id: ID,
    name: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "Repository", complex)]
pub(super) struct RepositoryNode {
    id: ID,
    name: String,
    name_with_owner: String,
    #[graphql(skip)]
    repo_id: i64,
}

/// An ISO-8601 encoded UTC date string, GitHub's `DateTime` scalar.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct DateTime(String);

async_graphql::scalar!(DateTime, "DateTime", "An ISO-8601 encoded UTC date string.");

#[derive(SimpleObject)]
#[graphql(name = "DeployKey")]
struct DeployKeyNode {
    id: ID,
    title: String,
    key: String,
    read_only: bool,
    verified: bool,
    created_at: DateTime,
}

impl From<&LinkedKey> for DeployKeyNode {
    fn from(linked: &LinkedKey) -> Self {
        DeployKeyNode {
            id: ID(node_id("DeployKey", linked.key.id)),
            title: linked.key.title.to_string(),
            key: bare_key(&linked.key.key_text).to_string(),
            read_only: !linked.can_push,
            // As in REST: a stored key is a checked key.
            verified: true,
            created_at: DateTime(iso_seconds(linked.linked_at)),
        }
    }
}

#[derive(SimpleObject)]
struct DeployKeyTotal {
    /// Identifies the total count of items in the connection.
    total_count: u64,
}

type DeployKeyConnection = Connection<String, DeployKeyNode, DeployKeyTotal>;

#[ComplexObject]
impl RepositoryNode {
    /// A list of deploy keys that are on this repository (maintainers and instance admins only).
    #[graphql(complexity = "50 + child_complexity")]
    async fn deploy_keys(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> async_graphql::Result<DeployKeyConnection> {
        let caller = ctx.data::<Caller>()?;
        let bounds = Bounds::check(after, before, first, last)?;
        let (core, who, repo) = (
            caller.core.clone(),
            caller.who.clone(),
            RepoRef::Id(self.repo_id),
        );
        // One trip: learning the total first is needed only to count back from the end.
        let (offset, page) = blocking(move || {
            let total = match (bounds.before, bounds.last) {
                (None, Some(_)) => Some(
                    core.list_keys(
                        &who,
                        &repo,
                        Window {
                            offset: 0,
                            limit: 0,
                        },
                    )?
                    .total,
                ),
                _ => None,
            };
            let window = bounds.window(total);
            Ok((window.offset, core.list_keys(&who, &repo, window)?))
        })
        .await
        .map_err(|err| core_error(caller, err, || "Could not resolve to a Repository.".into()))?;
        let shown = page.items.len() as u64;
        let mut connection = DeployKeyConnection::with_additional_fields(
            offset > 0,
            offset + shown < page.total,
            DeployKeyTotal {
                total_count: page.total,
            },
        );
        connection.edges.extend(
            page.items
                .iter()
                .zip(offset..)
                .map(|(linked, at)| Edge::new(cursor(at), DeployKeyNode::from(linked))),
        );
        Ok(connection)
    }
}

/// A connection's arguments once checked: GitHub's rules on `first`/`last` and opaque cursors.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Position of the first item after the `after` cursor.
    start: u64,
    /// Position of the `before` cursor's item, which is excluded.
    before: Option<u64>,
    first: Option<u64>,
    last: Option<u64>,
}

impl Bounds {
    fn check(
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> async_graphql::Result<Bounds> {
        if first.is_none() && last.is_none() {
            return Err(typed(
                "MISSING_PAGINATION_BOUNDARIES",
                "You must provide a `first` or `last` value to properly paginate the \
                 `deployKeys` connection."
                    .into(),
            ));
        }
        let count = |arg: &str, value: Option<i32>| -> async_graphql::Result<Option<u64>> {
            match value {
                None => Ok(None),
                Some(n) if n > MAX_PAGE => Err(typed(
                    "EXCESSIVE_PAGINATION",
                    format!(
                        "Requesting {n} records on the `deployKeys` connection exceeds the \
                         `{arg}` limit of {MAX_PAGE} records."
                    ),
                )),
                Some(n) if n < 1 => Err(typed(
                    "INVALID_PAGINATION",
                    format!(
                        "`{arg}` on the `deployKeys` connection must be between 1 and {MAX_PAGE}."
                    ),
                )),
                Some(n) => Ok(Some(n as u64)),
            }
        };
        let first = count("first", first)?;
        let last = count("last", last)?;
        let start = after
            .as_deref()
            .map(position)
            .transpose()?
            .map_or(0, |a| a + 1);
        let before = before.as_deref().map(position).transpose()?;
        Ok(Bounds {
            start,
            before,
            first,
            last,
        })
    }

    /// The slice Relay's algorithm selects: between the cursors, then the first `first`, then the
    /// last `last` of those. `total` is needed (and given) only for `last` without `before`.
    fn window(self, total: Option<u64>) -> Window {
        let mut start = self.start;
        let mut end = self.before.or(total).unwrap_or(u64::MAX);
        if let Some(first) = self.first {
            end = end.min(start.saturating_add(first));
        }
        if let Some(last) = self.last {
            start = start.max(end.saturating_sub(last));
        }
        let limit = end.saturating_sub(start).min(MAX_PAGE as u64) as u32;
        Window {
            offset: start,
            limit,
        }
    }
}

/// A cursor is the item's position in the repository's key list (oldest link first), opaque to
/// clients as GitHub's are.
fn cursor(at: u64) -> String {
    STANDARD.encode(format!("{CURSOR_PREFIX}{at}"))
}

fn position(cursor: &str) -> async_graphql::Result<u64> {
    STANDARD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX)?.parse::<u64>().ok())
        // Never past what an SQL offset can hold; such a cursor was not made here.
        .filter(|at| *at <= MAX_POSITION)
        .ok_or_else(|| {
            typed(
                "INVALID_CURSOR_ARGUMENTS",
                format!("`{}` does not appear to be a valid cursor.", echo(cursor)),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(
        after: Option<u64>,
        before: Option<u64>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Bounds {
        Bounds::check(after.map(cursor), before.map(cursor), first, last).expect("valid")
    }

    #[test]
    fn windows_follow_relay() {
        let w = |b: Bounds, total| {
            let w = b.window(total);
            (w.offset, w.limit)
        };
        assert_eq!(w(bounds(None, None, Some(2), None), None), (0, 2));
        assert_eq!(w(bounds(Some(1), None, Some(2), None), None), (2, 2));
        assert_eq!(w(bounds(None, None, None, Some(2)), Some(5)), (3, 2));
        assert_eq!(w(bounds(None, Some(3), None, Some(2)), None), (1, 2));
        assert_eq!(w(bounds(None, Some(1), None, Some(5)), None), (0, 1));
        assert_eq!(w(bounds(Some(4), Some(2), Some(3), None), None), (5, 0));
        assert_eq!(w(bounds(None, None, Some(4), Some(2)), None), (2, 2));
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(position(&cursor(42)).unwrap(), 42);
        assert!(position("nope").is_err());
        assert!(position(&STANDARD.encode("cursor:v1:x")).is_err());
    }

    #[test]
    fn first_and_last_are_bounded() {
        assert!(Bounds::check(None, None, None, None).is_err());
        assert!(Bounds::check(None, None, Some(0), None).is_err());
        assert!(Bounds::check(None, None, Some(101), None).is_err());
        assert!(Bounds::check(None, None, None, Some(100)).is_ok());
    }
}
