//! `GET /v1/openapi.json`: the HTTP API as an OpenAPI 3.1 document.
//!
//! The schemas are generated from the wire and engine types themselves (`utoipa`'s `ToSchema`,
//! derived beside `Serialize` under the `openapi` feature, so a field added to a view is in the
//! document at once); the table of routes below says, for each route the router serves (a test
//! reads the router's source and compares), its parameters, body, answers and the errors it can
//! give — each an [`ErrorBody`](api::wire::ErrorBody). Checked against a running coordinator by
//! schemathesis in CI (`.ci/contract`).

use api::wire;
use std::sync::OnceLock;
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr,
    Required, ResponseBuilder,
};

/// The document, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_string(&build()).unwrap_or_default())
}

/// Schemas gathered while the routes are described.
#[derive(Default)]
struct Schemas(Vec<(String, RefOr<Schema>)>);

impl Schemas {
    /// A reference to `T`'s schema under `name`, adding it and every schema it names.
    fn named<T: ToSchema>(&mut self, name: &str) -> RefOr<Schema> {
        T::schemas(&mut self.0);
        if !self.0.iter().any(|(n, _)| n == name) {
            self.0.push((name.to_string(), T::schema()));
        }
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
    }

    fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().to_string();
        self.named::<T>(&name)
    }

    fn list<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let item = self.of::<T>();
        ArrayBuilder::new().items(item).into()
    }
}

fn string() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn hex(len: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[0-9a-fA-F]{{{}}}$", 2 * len)))
        .into()
}

fn integer(minimum: Option<f64>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(minimum)
        .into()
}

fn unsigned() -> RefOr<Schema> {
    integer(Some(0.0))
}

fn boolean() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Boolean).into()
}

fn binary() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::Custom("binary".into())))
        .into()
}

/// One server-sent event of `GET /v1/events`.
fn pulse_event() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["pulse"])),
        )
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("a `Pulse`, as JSON")),
        )
        .required("event")
        .required("data")
        .into()
}

/// What an answer holds.
enum Body {
    Json(RefOr<Schema>),
    /// Raw bytes of these media types.
    Bytes(&'static [&'static str]),
    Text(&'static str),
    /// `text/event-stream`: each event as an object (`event`, `data`, …).
    Events(RefOr<Schema>),
}

#[derive(Clone)]
struct Param {
    name: &'static str,
    at: ParameterIn,
    schema: RefOr<Schema>,
    required: bool,
    about: &'static str,
}

fn path(name: &'static str, schema: RefOr<Schema>, about: &'static str) -> Param {
    Param {
        name,
        at: ParameterIn::Path,
        schema,
        required: true,
        about,
    }
}

fn query(name: &'static str, schema: RefOr<Schema>, about: &'static str) -> Param {
    Param {
        name,
        at: ParameterIn::Query,
        schema,
        required: false,
        about,
    }
}

fn header(name: &'static str, schema: RefOr<Schema>, about: &'static str) -> Param {
    Param {
        name,
        at: ParameterIn::Header,
        schema,
        required: false,
        about,
    }
}

/// The errors every route can give: a malformed parameter, a rate limit, a coordinator that
/// sheds reads or cannot make a write durable.
const COMMON: &[u16] = &[400, 429, 503];
/// And what writes add: a bad signature, a replay or conflict, a refusal by the engine's rules,
/// a body too large or too slow, a redirect to the leader of a validator set.
const WRITES: &[u16] = &[307, 401, 402, 403, 404, 408, 409, 413, 422];

fn describe(status: u16) -> &'static str {
    match status {
        307 => {
            "not the leader of the validator set: `Location` and `x-gridmint-leader` say where it is"
        }
        400 => "a malformed parameter, header or body",
        401 => "a missing or wrong signature",
        402 => "the signer's balance or stake does not cover it",
        403 => "not the signer's to do (another account's upload, a disabled faucet)",
        404 => "nothing by that id",
        408 => "the body came too slowly",
        409 => "a replayed nonce, or a state that does not allow it",
        410 => "deleted for good (a job's output after its storage was released)",
        413 => "the body is over its limit, or over the sender's allowance",
        416 => "a byte range outside the blob",
        422 => "refused by the network's rules (the `error` names the rule)",
        429 => "over the rate limit of the address or account: retry after `Retry-After` seconds",
        503 => {
            "busy (reads are shed first: retry after `Retry-After`), no leader elected, or the write could not be made durable"
        }
        _ => "",
    }
}

struct Route {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    params: Vec<Param>,
    body: Option<(Body, &'static str)>,
    /// Status, what it means, and its body (`None`: empty).
    ok: Vec<(u16, &'static str, Option<Body>)>,
    errors: Vec<u16>,
}

fn content(body: Body) -> Vec<(String, utoipa::openapi::Content)> {
    match body {
        Body::Json(schema) => vec![(
            "application/json".into(),
            ContentBuilder::new().schema(Some(schema)).build(),
        )],
        Body::Bytes(kinds) => kinds
            .iter()
            .map(|k| {
                (
                    (*k).to_string(),
                    ContentBuilder::new().schema(Some(binary())).build(),
                )
            })
            .collect(),
        Body::Text(kind) => vec![(
            kind.to_string(),
            ContentBuilder::new().schema(Some(string())).build(),
        )],
        Body::Events(event) => vec![(
            "text/event-stream".into(),
            ContentBuilder::new().schema(Some(event)).build(),
        )],
    }
}

fn operation(route: Route, error: &RefOr<Schema>) -> Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(route.summary))
        .operation_id(Some(format!(
            "{}{}",
            match route.method {
                HttpMethod::Get => "get",
                HttpMethod::Post => "post",
                HttpMethod::Put => "put",
                _ => "call",
            },
            route
                .path
                .split(['/', '{', '}', '.', '-'])
                .filter(|s| !s.is_empty() && *s != "v1")
                .map(|s| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<String>()
        )));
    for p in route.params {
        op = op.parameter(
            ParameterBuilder::new()
                .name(p.name)
                .parameter_in(p.at)
                .required(if p.required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(p.about))
                .schema(Some(p.schema)),
        );
    }
    if let Some((body, about)) = route.body {
        let mut b = RequestBodyBuilder::new()
            .description(Some(about))
            .required(Some(Required::True));
        for (kind, c) in content(body) {
            b = b.content(kind, c);
        }
        op = op.request_body(Some(b.build()));
    }
    for (status, about, body) in route.ok {
        let mut r = ResponseBuilder::new().description(about);
        if let Some(body) = body {
            for (kind, c) in content(body) {
                r = r.content(kind, c);
            }
        }
        op = op.response(status.to_string(), r.build());
    }
    let mut errors: Vec<u16> = route
        .errors
        .into_iter()
        .chain(COMMON.iter().copied())
        .collect();
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let r = ResponseBuilder::new()
            .description(describe(status))
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(error.clone())).build(),
            );
        op = op.response(status.to_string(), r.build());
    }
    op.build()
}

/// The routes this coordinator serves (a validator also serves `/raft/*` to the other
/// validators, not described here).
fn routes(s: &mut Schemas) -> Vec<Route> {
    use HttpMethod::{Get, Post, Put};
    let account = || hex(32);
    let blob = || hex(32);
    let signed_headers = || {
        vec![
            header("x-gridmint-signer", hex(32), "the signer's account"),
            header("x-gridmint-nonce", unsigned(), "the signer's next nonce"),
            header(
                "x-gridmint-signature",
                hex(64),
                "ed25519 signature of the request",
            ),
        ]
    };
    let page = |limit: &'static str| {
        vec![
            query(
                "from",
                unsigned(),
                "the first height or sequence number (default 1)",
            ),
            query("limit", unsigned(), limit),
        ]
    };
    let mut out = vec![
        Route {
            method: Get,
            path: "/v1/status",
            summary: "The coordinator's state in brief: log length, state hash, providers, jobs, its role",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the status",
                Some(Body::Json(s.of::<wire::StatusView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/blobs/{hash}",
            summary: "A blob's bytes, or a piece of them with `Range`",
            params: vec![
                path("hash", blob(), "BLAKE3 hash of the blob"),
                query("local", boolean(), "only this validator's copy"),
                header("range", string(), "`bytes=START-[END]`: at most 16 MiB"),
            ],
            body: None,
            ok: vec![
                (
                    200,
                    "the blob",
                    Some(Body::Bytes(&["application/octet-stream"])),
                ),
                (
                    206,
                    "the piece asked for",
                    Some(Body::Bytes(&["application/octet-stream"])),
                ),
            ],
            errors: vec![404, 416],
        },
        Route {
            method: Put,
            path: "/v1/blobs/{hash}",
            summary: "Stores a blob (signed headers: a `put_blob` request)",
            params: [
                vec![path("hash", blob(), "BLAKE3 hash of the body")],
                signed_headers(),
            ]
            .concat(),
            body: Some((
                Body::Bytes(&["application/octet-stream"]),
                "the blob's bytes",
            )),
            ok: vec![
                (
                    200,
                    "already stored",
                    Some(Body::Json(s.of::<wire::BlobStored>())),
                ),
                (201, "stored", Some(Body::Json(s.of::<wire::BlobStored>()))),
            ],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Get,
            path: "/v1/blobs/{hash}/slice",
            summary: "A BLAKE3-verified slice of a blob (bao), `x-blob-size` its whole size",
            params: vec![
                path("hash", blob(), "BLAKE3 hash of the blob"),
                query("start", unsigned(), "first byte"),
                query("len", unsigned(), "bytes, at most 16 MiB"),
                query("local", boolean(), "only this validator's copy"),
            ],
            body: None,
            ok: vec![(
                200,
                "the slice and its proof",
                Some(Body::Bytes(&["application/octet-stream"])),
            )],
            errors: vec![404, 416],
        },
        Route {
            method: Get,
            path: "/v1/uploads/{hash}",
            summary: "How much of a chunked upload the coordinator holds",
            params: vec![path("hash", blob(), "BLAKE3 hash of the whole blob")],
            body: None,
            ok: vec![(
                200,
                "the upload",
                Some(Body::Json(s.of::<wire::UploadView>())),
            )],
            errors: vec![404],
        },
        Route {
            method: Post,
            path: "/v1/uploads/{hash}",
            summary: "Opens a chunked upload of `size` bytes (signed headers: `start_upload`)",
            params: [
                vec![
                    path("hash", blob(), "BLAKE3 hash of the whole blob"),
                    query("size", unsigned(), "the blob's size"),
                ],
                signed_headers(),
            ]
            .concat(),
            body: None,
            ok: vec![
                (
                    200,
                    "already open, or stored",
                    Some(Body::Json(s.of::<wire::UploadView>())),
                ),
                (201, "opened", Some(Body::Json(s.of::<wire::UploadView>()))),
            ],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Put,
            path: "/v1/uploads/{hash}",
            summary: "One chunk of a chunked upload (signed headers: `put_chunk`)",
            params: [
                vec![
                    path("hash", blob(), "BLAKE3 hash of the whole blob"),
                    query("offset", unsigned(), "where the chunk goes"),
                    query(
                        "len",
                        unsigned(),
                        "with a verified slice (bao) as the body: its length",
                    ),
                ],
                signed_headers(),
            ]
            .concat(),
            body: Some((Body::Bytes(&["application/octet-stream"]), "at most 16 MiB")),
            ok: vec![
                (
                    200,
                    "the upload so far",
                    Some(Body::Json(s.of::<wire::UploadView>())),
                ),
                (
                    201,
                    "the last chunk: the blob is stored",
                    Some(Body::Json(s.of::<wire::BlobStored>())),
                ),
            ],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Post,
            path: "/v1/actions",
            summary: "A signed action: submit a job, transfer, stake, register a provider, report results, …",
            params: vec![],
            body: Some((
                Body::Json(s.named::<engine::Signed<engine::Action>>("SignedAction")),
                "the signed action",
            )),
            ok: vec![(
                200,
                "logged: its sequence number and what it caused",
                Some(Body::Json(s.of::<wire::ActionResponse>())),
            )],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Post,
            path: "/v1/actions/batch",
            summary: "Up to 4096 signed actions (`api::wire::ACTION_BATCH_MAX`), checked and committed in order, made durable together",
            params: vec![],
            body: Some((
                Body::Json(
                    ArrayBuilder::new()
                        .items(s.named::<engine::Signed<engine::Action>>("SignedAction"))
                        .into(),
                ),
                "the signed actions",
            )),
            ok: vec![(
                200,
                "one outcome per action, in order",
                Some(Body::Json(s.list::<wire::BatchOutcome>())),
            )],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Get,
            path: "/v1/actions/{signer}/{nonce}",
            summary: "A logged write looked up by its signer and nonce (after its answer was lost)",
            params: vec![
                path("signer", account(), "the signer's account"),
                path("nonce", unsigned(), "the action's nonce"),
            ],
            body: None,
            ok: vec![(
                200,
                "logged",
                Some(Body::Json(s.of::<wire::ActionResponse>())),
            )],
            errors: [WRITES, &[404]].concat(),
        },
        Route {
            method: Post,
            path: "/v1/work/fetch",
            summary: "A provider's signed request for work",
            params: vec![],
            body: Some((
                Body::Json(s.named::<engine::Signed<engine::Request>>("SignedRequest")),
                "a signed `fetch` request",
            )),
            ok: vec![(
                200,
                "the tasks assigned",
                Some(Body::Json(s.of::<wire::FetchResponse>())),
            )],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Post,
            path: "/v1/work/exchange",
            summary: "Reports and a fetch in one round trip",
            params: vec![],
            body: Some((
                Body::Json(s.of::<wire::Exchange>()),
                "signed reports and a signed fetch",
            )),
            ok: vec![(
                200,
                "what was logged, and the tasks assigned",
                Some(Body::Json(s.of::<wire::ExchangeResponse>())),
            )],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Post,
            path: "/v1/work/heartbeat",
            summary: "A provider's signed heartbeat",
            params: vec![],
            body: Some((
                Body::Json(s.named::<engine::Signed<engine::Request>>("SignedRequest")),
                "a signed `heartbeat` request",
            )),
            ok: vec![(
                200,
                "seen",
                Some(Body::Json(s.of::<wire::HeartbeatResponse>())),
            )],
            errors: vec![401, 404, 409, 413],
        },
        Route {
            method: Post,
            path: "/v1/work/ping",
            summary: "A cheap heartbeat with a session token",
            params: vec![],
            body: Some((
                Body::Json(s.of::<wire::Ping>()),
                "the provider and its session token",
            )),
            ok: vec![(
                200,
                "seen",
                Some(Body::Json(s.of::<wire::HeartbeatResponse>())),
            )],
            errors: vec![401, 404, 413],
        },
        Route {
            method: Get,
            path: "/v1/jobs",
            summary: "Jobs, newest first, without per-task detail",
            params: vec![
                query("before", unsigned(), "only jobs with a smaller id"),
                query(
                    "limit",
                    unsigned(),
                    "at most this many (default 50, at most 200)",
                ),
                query("owner", account(), "only this account's jobs"),
            ],
            body: None,
            ok: vec![(
                200,
                "a page of jobs",
                Some(Body::Json(s.of::<wire::JobsPage>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/jobs/{id}",
            summary: "A job: status, progress, escrow, energy, and a page of per-task detail",
            params: vec![
                path("id", unsigned(), "the job id"),
                query("tasks", boolean(), "with per-task detail"),
                query("tasks_from", unsigned(), "the first task of the page"),
                query(
                    "tasks_limit",
                    unsigned(),
                    "tasks in the page (at most 1000)",
                ),
                query(
                    "wait_ms",
                    unsigned(),
                    "wait up to this long for the job to finish",
                ),
            ],
            body: None,
            ok: vec![(200, "the job", Some(Body::Json(s.of::<wire::JobView>())))],
            errors: vec![404],
        },
        Route {
            method: Get,
            path: "/v1/jobs/{id}/output",
            summary: "A completed job's output: an image type when its bytes are one",
            params: vec![path("id", unsigned(), "the job id")],
            body: None,
            ok: vec![(
                200,
                "the output",
                Some(Body::Bytes(&[
                    "application/octet-stream",
                    "image/png",
                    "image/jpeg",
                    "image/gif",
                ])),
            )],
            errors: vec![404, 409, 410],
        },
        Route {
            method: Get,
            path: "/v1/providers",
            summary: "Providers in the order of their ids",
            params: vec![
                query("after", account(), "only providers after this id"),
                query("limit", unsigned(), "at most this many (at most 1000)"),
            ],
            body: None,
            ok: vec![(
                200,
                "a page of providers",
                Some(Body::Json(s.list::<wire::ProviderView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/providers/{id}",
            summary: "A provider: spec, state, reputation, stake, earnings",
            params: vec![path("id", account(), "the provider's account")],
            body: None,
            ok: vec![(
                200,
                "the provider",
                Some(Body::Json(s.of::<wire::ProviderView>())),
            )],
            errors: vec![404],
        },
        Route {
            method: Get,
            path: "/v1/accounts/{id}",
            summary: "An account's balance, stake, escrow and storage deposits",
            params: vec![path("id", account(), "the account")],
            body: None,
            ok: vec![(
                200,
                "the account",
                Some(Body::Json(s.of::<wire::AccountView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/accounts/{id}/history",
            summary: "What happened to an account's tokens, newest first",
            params: vec![
                path("id", account(), "the account"),
                query(
                    "before",
                    unsigned(),
                    "only entries before this sequence number",
                ),
                query(
                    "limit",
                    unsigned(),
                    "at most this many (default 50, at most 500)",
                ),
            ],
            body: None,
            ok: vec![(
                200,
                "a page of history",
                Some(Body::Json(s.of::<wire::HistoryPage>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/network",
            summary: "The network's token, fees, stake and slash rules, verification rules, supply",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the network",
                Some(Body::Json(s.of::<wire::NetworkView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/market",
            summary: "The price index (rules 25): recent prices per fuel of accepted work, per resource class and region",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the price index",
                Some(Body::Json(s.of::<wire::MarketView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/validators",
            summary: "Validators (rules 27): each one's power, own stake, backing and share of fees earned, and the next payout of the validators' share",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the validators",
                Some(Body::Json(s.of::<wire::ValidatorsView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/gpu/classes",
            summary: "GPU classes (rules 28): the providers whose class is proven (founded, or by whose check) and the claims waiting for a member to check them, with any open challenge",
            params: vec![
                query(
                    "class",
                    string(),
                    "only the members of this class and the claims to it (the exact class string)",
                ),
                query("provider", account(), "only this provider's entry"),
                query(
                    "member",
                    account(),
                    "of the proven entries only this member's own, and the pending claims (at most 256, the oldest first): what a provider has to do",
                ),
            ],
            body: None,
            ok: vec![(
                200,
                "proven and pending, each in the order of provider ids",
                Some(Body::Json(s.of::<wire::GpuClassesView>())),
            )],
            errors: vec![400],
        },
        Route {
            method: Get,
            path: "/v1/proposals",
            summary: "Governance (rules 25): the parameters in force and the newest proposals with their tallies",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the governance",
                Some(Body::Json(s.of::<wire::GovernanceView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/proposals/{id}",
            summary: "A proposal (rules 25): its changes, votes, status and tally",
            params: vec![path("id", unsigned(), "the proposal's number")],
            body: None,
            ok: vec![(
                200,
                "the proposal",
                Some(Body::Json(s.of::<wire::ProposalView>())),
            )],
            errors: vec![400, 404],
        },
        Route {
            method: Get,
            path: "/v1/reservations",
            summary: "Reserved capacity (rules 26): the newest reservations with their leases",
            params: vec![
                query("owner", account(), "only this account's reservations"),
                query(
                    "provider",
                    account(),
                    "only the reservations this provider holds a lease of now",
                ),
            ],
            body: None,
            ok: vec![(
                200,
                "newest first, at most 200",
                Some(Body::Json(s.list::<wire::ReservationView>())),
            )],
            errors: vec![400],
        },
        Route {
            method: Get,
            path: "/v1/reservations/{id}",
            summary: "A reservation (rules 26): its spec, status, escrow and leases",
            params: vec![path("id", unsigned(), "the reservation's number")],
            body: None,
            ok: vec![(
                200,
                "the reservation",
                Some(Body::Json(s.of::<wire::ReservationView>())),
            )],
            errors: vec![400, 404],
        },
        Route {
            method: Get,
            path: "/v1/chain/genesis",
            summary: "The genesis the network started from",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the genesis",
                Some(Body::Json(s.of::<engine::Genesis>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain",
            summary: "Where the chain stands: height, tip, entries sealed and not",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the chain",
                Some(Body::Json(s.of::<wire::ChainView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain/blocks",
            summary: "Signed blocks from a height",
            params: page("at most this many (at most 1000)"),
            body: None,
            ok: vec![(
                200,
                "the blocks (empty: nothing more)",
                Some(Body::Json(s.list::<engine::Block>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain/entries",
            summary: "Log entries as stored (postcard, hex): what the blocks' Merkle roots are over",
            params: page("at most this many (at most 1000)"),
            body: None,
            ok: vec![(
                200,
                "the entries",
                Some(Body::Json(s.list::<wire::RawEntry>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain/inputs",
            summary: "Log entries decoded, for people and explorers",
            params: page("at most this many (at most 200)"),
            body: None,
            ok: vec![(
                200,
                "the entries",
                Some(Body::Json(s.list::<wire::EntryView>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain/validators",
            summary: "The validator set (empty for a single coordinator)",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the set",
                Some(Body::Json(s.of::<engine::ValidatorSet>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain/signatures",
            summary: "Validators' signatures of blocks from a height",
            params: page("blocks, at most 1000"),
            body: None,
            ok: vec![(
                200,
                "the signatures",
                Some(Body::Json(s.list::<wire::BlockSignature>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/chain/checkpoint",
            summary: "A validator's checkpoint (postcard), for a validator joining",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the checkpoint",
                Some(Body::Bytes(&["application/octet-stream"])),
            )],
            errors: vec![404],
        },
        Route {
            method: Post,
            path: "/v1/chain/evidence",
            summary: "Evidence that a validator signed two blocks at one height",
            params: vec![],
            body: Some((
                Body::Json(s.of::<engine::Equivocation>()),
                "the two signed headers",
            )),
            ok: vec![(
                200,
                "logged",
                Some(Body::Json(s.of::<wire::ActionResponse>())),
            )],
            errors: WRITES.to_vec(),
        },
        Route {
            method: Get,
            path: "/v1/events",
            summary: "Server-sent events: `event: pulse` with a Pulse, at most once a second, when it changed",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the stream: each event's data is a `Pulse` as JSON",
                Some(Body::Events(pulse_event())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/pulses",
            summary: "The pulses kept: one every 5 s over the last hour",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "oldest first",
                Some(Body::Json(s.list::<wire::PulsePoint>())),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/v1/openapi.json",
            summary: "This document",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "OpenAPI 3.1",
                Some(Body::Json(
                    ObjectBuilder::new().schema_type(Type::Object).into(),
                )),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/metrics",
            summary: "Prometheus metrics (OpenMetrics text)",
            params: vec![],
            body: None,
            ok: vec![(
                200,
                "the metrics",
                Some(Body::Text("application/openmetrics-text")),
            )],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/",
            summary: "The web console",
            params: vec![],
            body: None,
            ok: vec![(200, "the page", Some(Body::Text("text/html")))],
            errors: vec![],
        },
        Route {
            method: Get,
            path: "/console/{file}",
            summary: "The web console's script and style sheet",
            params: vec![path("file", string(), "`console.js` or `console.css`")],
            body: None,
            ok: vec![(200, "the file", Some(Body::Text("text/javascript")))],
            errors: vec![404],
        },
    ];
    // The Pulse itself, named in the event stream's description; what the signed envelopes
    // carry (their schemas name them, generically).
    let _ = s.of::<wire::Pulse>();
    let _ = s.of::<engine::Action>();
    let _ = s.of::<engine::Request>();
    let _ = s.of::<engine::BlockHeader>();
    out.sort_by_key(|r| r.path);
    out
}

fn build() -> OpenApi {
    let mut schemas = Schemas::default();
    let error = schemas.of::<wire::ErrorBody>();
    let mut paths = Paths::new();
    for route in routes(&mut schemas) {
        let (p, method) = (route.path, route.method.clone());
        paths.add_path_operation(p, vec![method], operation(route, &error));
    }
    let mut components = ComponentsBuilder::new();
    for (name, schema) in schemas.0 {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Gridmint coordinator API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of a Gridmint coordinator or validator. Token amounts are \
                     decimal strings of base units (10^9 per token); ids and hashes are \
                     lower-case hex; every error is an `ErrorBody` with a 4xx status (a 5xx is \
                     a bug; 503 is a busy coordinator's, with `Retry-After`). Writes are signed \
                     ed25519 over the canonical (postcard) encoding — the `api` crate and the \
                     `gridmint` CLI do it.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves is described, and nothing else is.
    #[test]
    fn the_document_describes_every_route_of_the_router() {
        let source = include_str!("routes.rs");
        let mut served = std::collections::BTreeSet::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let start = rest.find('"').unwrap() + 1;
            let end = start + rest[start..].find('"').unwrap();
            let path = &rest[start..end];
            let call = &rest[end..rest.find(")\n").unwrap_or(rest.len())];
            for method in ["get", "post", "put"] {
                if call.contains(&format!("{method}(")) || call.contains(&format!(".{method}(")) {
                    served.insert((method.to_string(), path.to_string()));
                }
            }
        }
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut described = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                described.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(served, described);
        assert_eq!(doc["openapi"], "3.1.0");
    }

    /// Every schema a document names is in it.
    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let parsed: serde_json::Value = serde_json::from_str(doc).unwrap();
        let schemas = parsed["components"]["schemas"].as_object().unwrap();
        for piece in doc.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "{name} is named but missing");
        }
    }
}
