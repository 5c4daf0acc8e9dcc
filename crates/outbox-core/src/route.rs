//! The route table: which requests Outbox takes care of, which lane each
//! belongs to, and how each carries its idempotency key.
//!
//! Only configured origins and routes are touched; everything else passes by
//! untouched (the drivers never even read its body).

use crate::entry::{EntryId, Prepared, StoredRequest};
use crate::hold::OnDead;
use crate::request::IncomingRequest;
use crate::{headers, json, url};
use alloc::{borrow::ToOwned, boxed::Box, string::String, vec, vec::Vec};

/// Names of the default routes.
pub mod names {
    /// Agent send: `/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`.
    pub const AGENT_SEND: &str = "agent-send";
    /// Open Messaging inbound: `/api/v2/conversations/messages/{integrationId}/inbound/open/message`.
    pub const OPEN_INBOUND: &str = "open-inbound";
    /// Agentless outbound: `/api/v2/conversations/messages/agentless`.
    pub const AGENTLESS: &str = "agentless";
    /// The seed tutorials' invented `/api/v2/conversations/messaging/messages`.
    pub const SEED_TUTORIAL: &str = "seed-tutorial";
}

/// Where a route finds the lane (ordering key) of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneSource {
    /// A `{name}` parameter of the path template.
    PathParam(String),
    /// A field of the JSON body, by path (`["channel","from","id"]`).
    BodyField(Vec<String>),
}

/// Where a route carries the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    /// A request header (e.g. `Idempotency-Key`).
    Header(String),
    /// A string field of the JSON body (e.g. `externalId`,
    /// `channel.messageId`); inserted when absent.
    BodyField(Vec<String>),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A path template such as `/api/v2/conversations/messages/{conversationId}/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

/// A path template is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Bad template text.
    #[error("bad path template `{template}`: {why}")]
    Template {
        /// The template.
        template: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Bad origin.
    #[error(transparent)]
    Origin(#[from] url::BadUrl),
    /// A lane source names a parameter the template lacks.
    #[error("route `{route}`: lane parameter `{param}` is not in its path")]
    UnknownParam {
        /// The route.
        route: String,
        /// The parameter.
        param: String,
    },
}

impl PathTemplate {
    /// Parses `/literal/{param}/…`.
    pub fn parse(template: &str) -> Result<Self, RouteError> {
        let bad = |why| RouteError::Template {
            template: template.to_owned(),
            why,
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with /"))?;
        let mut segments = Vec::new();
        for part in rest.split('/') {
            if part.is_empty() {
                return Err(bad("empty segment"));
            }
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err(bad("bad parameter"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if part.contains(['{', '}']) {
                return Err(bad("braces inside a literal segment"));
            } else {
                segments.push(Segment::Literal(part.to_owned()));
            }
        }
        Ok(Self { segments })
    }

    /// Matches a path, returning the parameters.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(lit) if lit == part => {}
                Segment::Param(name) if !part.is_empty() => params.push((name.as_str(), part)),
                _ => return None,
            }
        }
        Some(params)
    }

    fn has_param(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Param(p) if p == name))
    }
}

/// The template as written (`/chat/{room}/send`).
impl core::fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => write!(f, "/{text}")?,
                Segment::Param(name) => write!(f, "/{{{name}}}")?,
            }
        }
        Ok(())
    }
}

/// A route: a method and path template, and what Outbox needs to know to
/// keep its requests in order and idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Stable name (stored with each entry).
    pub name: String,
    /// HTTP method (upper case).
    pub method: String,
    /// Path template.
    pub path: PathTemplate,
    /// Lane sources, tried in order; the first non-empty value wins.
    pub lane: Vec<LaneSource>,
    /// Idempotency carriers; empty for none.
    pub carriers: Vec<Carrier>,
    /// Whether a `409` answer means "already delivered" (only true where
    /// the carrier makes the server say so).
    pub conflict_is_delivered: bool,
    /// Whether a bearer token is attached when sending.
    pub needs_token: bool,
    /// What a lane of this route does when its head becomes a dead letter
    /// (default: hold; [`crate::hold`]).
    pub on_dead: OnDead,
}

impl Route {
    /// A `POST` route with a lane source, no carrier, needing a token.
    pub fn post(name: &str, template: &str, lane: Vec<LaneSource>) -> Result<Self, RouteError> {
        let path = PathTemplate::parse(template)?;
        for source in &lane {
            if let LaneSource::PathParam(p) = source
                && !path.has_param(p)
            {
                {
                    return Err(RouteError::UnknownParam {
                        route: name.to_owned(),
                        param: p.clone(),
                    });
                }
            }
        }
        Ok(Self {
            name: name.to_owned(),
            method: "POST".into(),
            path,
            lane,
            carriers: Vec::new(),
            conflict_is_delivered: false,
            needs_token: true,
            on_dead: OnDead::Hold,
        })
    }

    /// Adds an idempotency carrier.
    pub fn with_carrier(mut self, carrier: Carrier) -> Self {
        self.carriers.push(carrier);
        self
    }

    /// Sets what a lane does when its head becomes a dead letter.
    pub fn with_on_dead(mut self, on_dead: OnDead) -> Self {
        self.on_dead = on_dead;
        self
    }

    /// Marks `409` as "already delivered".
    pub fn conflict_means_delivered(mut self) -> Self {
        self.conflict_is_delivered = true;
        self
    }
}

fn field(path: &str) -> LaneSource {
    LaneSource::BodyField(path.split('.').map(str::to_owned).collect())
}

/// What the route table says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Not ours: pass it by untouched.
    Unmatched,
    /// Ours, and ready.
    Matched(Box<Prepared>),
    /// A configured route, but the request cannot be keyed (no lane value,
    /// body not JSON where a body field is needed). It is passed through so
    /// that the server's own error reaches the caller.
    Unroutable {
        /// Route name.
        route: String,
        /// Why.
        reason: String,
    },
}

/// A route that matched, the origin, and the path parameters.
type Found<'a, 'u> = (&'a Route, String, Vec<(&'a str, &'u str)>);

/// The configured routes and origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    origins: Vec<String>,
    routes: Vec<Route>,
    kept_headers: Vec<String>,
}

impl RouteTable {
    /// An empty table: nothing is intercepted.
    pub fn empty() -> Self {
        Self {
            origins: Vec::new(),
            routes: Vec::new(),
            kept_headers: Vec::new(),
        }
    }

    /// The four default routes of the design on `https://api.<domain>` for
    /// every Genesys region.
    pub fn genesys() -> Self {
        let mut table = Self::empty();
        for region in crate::genesys::REGIONS {
            table.origins.push(crate::genesys::api_origin(region));
        }
        table.routes = default_routes();
        table
    }

    /// Adds an origin (the app's proxy, the emulator) to which the routes
    /// apply.
    pub fn add_origin(&mut self, origin: &str) -> Result<(), RouteError> {
        let origin = url::normalize_origin(origin)?;
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        Ok(())
    }

    /// Adds a route (tried after the existing ones).
    pub fn add_route(&mut self, route: Route) {
        self.routes.push(route);
    }

    /// Makes every route that carries no key in a header also carry it in
    /// the header `name` (e.g. `Idempotency-Key`), for servers or proxies
    /// that accept (and CORS-allow) it.
    pub fn carry_key_in_header(&mut self, name: &str) {
        for route in &mut self.routes {
            if !route
                .carriers
                .iter()
                .any(|c| matches!(c, Carrier::Header(_)))
            {
                route.carriers.push(Carrier::Header(name.to_owned()));
            }
        }
    }

    /// Keeps an extra (non-credential) header at rest.
    pub fn keep_header(&mut self, name: &str) {
        self.kept_headers.push(name.to_ascii_lowercase());
    }

    /// The configured origins.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The configured routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// What lanes of route `route` do when their head becomes a dead letter
    /// (an unknown route holds: a hole is worse than a visible wait).
    pub fn on_dead(&self, route: &str) -> OnDead {
        self.route(route).map_or(OnDead::Hold, |r| r.on_dead)
    }

    /// Sets what lanes of route `name` do when their head becomes a dead
    /// letter. Returns whether the route exists.
    pub fn set_on_dead(&mut self, name: &str, on_dead: OnDead) -> bool {
        match self.routes.iter_mut().find(|r| r.name == name) {
            Some(r) => {
                r.on_dead = on_dead;
                true
            }
            None => false,
        }
    }

    /// The route named `name`.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// Whether a request might be ours, from its method and URL alone (so a
    /// driver can leave other requests' bodies unread).
    pub fn is_candidate(&self, method: &str, url_text: &str) -> bool {
        self.find(method, url_text).is_some()
    }

    fn find<'a, 'u>(&'a self, method: &str, url_text: &'u str) -> Option<Found<'a, 'u>> {
        let parts = url::parse(url_text).ok()?;
        if !self.origins.contains(&parts.origin) {
            return None;
        }
        self.routes.iter().find_map(|route| {
            if !route.method.eq_ignore_ascii_case(method) {
                return None;
            }
            let params = route.path.matches(parts.path)?;
            Some((route, parts.origin.clone(), params))
        })
    }

    /// Matches a request and prepares it for storage: strips credentials
    /// (keeping a bearer token aside, in memory), takes the lane, and puts
    /// the idempotency key (`id` unless the request already carries one) in
    /// every carrier.
    pub fn prepare(&self, request: &IncomingRequest, id: EntryId) -> Routing {
        let Some((route, origin, params)) = self.find(&request.method, &request.url) else {
            return Routing::Unmatched;
        };
        let unroutable = |reason: String| Routing::Unroutable {
            route: route.name.clone(),
            reason,
        };
        let needs_json = route
            .lane
            .iter()
            .any(|l| matches!(l, LaneSource::BodyField(_)))
            || route
                .carriers
                .iter()
                .any(|c| matches!(c, Carrier::BodyField(_)));
        if let (true, Err(e)) = (needs_json, json::validate(&request.body)) {
            return unroutable(["body is not JSON: ", &e.text()].concat());
        }
        let lane = route.lane.iter().find_map(|source| match source {
            LaneSource::PathParam(name) => params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| (*v).to_owned()),
            LaneSource::BodyField(path) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                json::find(&request.body, &path)
                    .and_then(|v| v.as_key().map(|k| k.into_owned()))
                    .filter(|k| !k.is_empty())
            }
        });
        let Some(lane) = lane else {
            return unroutable(["no lane key (", &describe_sources(&route.lane), ")"].concat());
        };

        let bearer = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .find_map(|(_, v)| headers::bearer_token(v))
            .map(str::to_owned);
        let mut extra = self.kept_headers.clone();
        for carrier in &route.carriers {
            if let Carrier::Header(name) = carrier {
                extra.push(name.to_ascii_lowercase());
            }
        }
        let mut stored = StoredRequest {
            method: request.method.to_ascii_uppercase(),
            url: request.url.clone(),
            headers: headers::keep(
                request
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str())),
                &extra,
            ),
            body: request.body.clone(),
        };

        // The key: what a carrier already holds, else the entry id.
        let existing = route.carriers.iter().find_map(|c| match c {
            Carrier::Header(name) => stored.header(name).map(str::to_owned),
            Carrier::BodyField(path) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                json::find(&stored.body, &path).and_then(|v| v.as_str().map(|s| s.into_owned()))
            }
        });
        let key = existing.unwrap_or_else(|| id.hyphenated());
        for carrier in &route.carriers {
            match carrier {
                Carrier::Header(name) => {
                    if stored.header(name).is_none() {
                        stored
                            .headers
                            .push((name.to_ascii_lowercase(), key.clone()));
                    }
                }
                Carrier::BodyField(path) => {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    let present = json::find(&stored.body, &path);
                    if present.is_some_and(|v| v.kind != json::Kind::String) {
                        // The app put something else there: the key could
                        // neither be read nor carried (found by fuzzing).
                        return unroutable(
                            ["idempotency field ", &path.join("."), " is not a string"].concat(),
                        );
                    }
                    if present.is_none() {
                        let Some((field, parents)) = path.split_last() else {
                            return unroutable("empty idempotency carrier path".into());
                        };
                        match json::insert_string(&stored.body, parents, field, &key) {
                            Ok(body) => stored.body = body,
                            Err(e) => {
                                return unroutable(
                                    [
                                        "cannot add idempotency field ",
                                        &path.join("."),
                                        ": ",
                                        &e.text(),
                                    ]
                                    .concat(),
                                );
                            }
                        }
                    }
                }
            }
        }
        Routing::Matched(Box::new(Prepared {
            id,
            route: route.name.clone(),
            origin,
            lane,
            request: stored,
            idempotency_key: key,
            needs_token: route.needs_token,
            conflict_is_delivered: route.conflict_is_delivered,
            bearer,
        }))
    }
}

fn describe_sources(sources: &[LaneSource]) -> String {
    sources
        .iter()
        .map(|s| match s {
            LaneSource::PathParam(p) => ["path {", p, "}"].concat(),
            LaneSource::BodyField(f) => ["body field ", &f.join(".")].concat(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The four routes of the design, all `POST`.
pub fn default_routes() -> Vec<Route> {
    let routes: Result<Vec<Route>, RouteError> = (|| {
        Ok(vec![
            Route::post(
                names::AGENT_SEND,
                "/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages",
                vec![LaneSource::PathParam("conversationId".into())],
            )?,
            Route::post(
                names::OPEN_INBOUND,
                "/api/v2/conversations/messages/{integrationId}/inbound/open/message",
                vec![field("channel.from.id")],
            )?
            .with_carrier(Carrier::BodyField(vec![
                "channel".into(),
                "messageId".into(),
            ])),
            Route::post(
                names::AGENTLESS,
                "/api/v2/conversations/messages/agentless",
                vec![field("toAddress")],
            )?,
            Route::post(
                names::SEED_TUTORIAL,
                "/api/v2/conversations/messaging/messages",
                vec![field("to.id"), field("conversationId")],
            )?
            .with_carrier(Carrier::BodyField(vec!["externalId".into()]))
            .with_carrier(Carrier::Header("Idempotency-Key".into()))
            .conflict_means_delivered(),
        ])
    })();
    // The templates above are constants; `tests/routes.rs`
    // (`every_region_gets_the_four_routes`) checks that all four parse.
    routes.unwrap_or_default()
}
