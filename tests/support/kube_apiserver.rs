//! A strict stand-in for kube-apiserver's list and watch of pods, nodes, services,
//! endpoints, endpoint slices and ingresses, for end-to-end tests of `kubernetes_sd_configs`.
//!
//! It speaks the real protocol: JSON lists (`kind: PodList`, `metadata.resourceVersion`,
//! `limit`/`continue` pages), `?watch=1` streams of one JSON event per line in a chunked body
//! (ADDED, MODIFIED, DELETED, BOOKMARK with `allowWatchBookmarks`, ERROR with a 410 Status
//! for a compacted resource version), label and field selectors applied as the API server
//! applies them (a MODIFIED that leaves a field selector is sent as DELETED), `Status`
//! bodies for errors. Its objects are k8s-openapi's types serialized, so they are what a
//! kube-apiserver sends, with `resourceVersion` stamped on each write.
//!
//! It must be strict: no bearer token or an unknown one is 401; a token whose role does
//! not grant the resource is 403 (RBAC); an unknown path is 404; a malformed label or field
//! selector, a field the resource does not index, or a bad `limit`/`watch`/`timeoutSeconds`
//! is 400. Stricter than the API server (which ignores unknown query parameters): an unknown
//! parameter is 400 too, because a client that sends one has a typo. It must not depend on
//! tailward's code: it is the oracle the discovery is tested against. Faults can be
//! scripted: the next requests answer a status (500, 401, ...), watches can be cut.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A resource the fake serves: its path root, plural, kind and scope.
struct Resource {
    root: &'static str,
    plural: &'static str,
    kind: &'static str,
    api_version: &'static str,
    namespaced: bool,
    /// Field selectors the API server accepts for it (`metadata.name` and, when namespaced,
    /// `metadata.namespace` always).
    fields: &'static [&'static str],
}

const RESOURCES: &[Resource] = &[
    Resource {
        root: "/api/v1",
        plural: "pods",
        kind: "Pod",
        api_version: "v1",
        namespaced: true,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    Resource {
        root: "/api/v1",
        plural: "nodes",
        kind: "Node",
        api_version: "v1",
        namespaced: false,
        fields: &["spec.unschedulable"],
    },
    Resource {
        root: "/api/v1",
        plural: "services",
        kind: "Service",
        api_version: "v1",
        namespaced: true,
        fields: &[],
    },
    Resource {
        root: "/api/v1",
        plural: "endpoints",
        kind: "Endpoints",
        api_version: "v1",
        namespaced: true,
        fields: &[],
    },
    Resource {
        root: "/apis/discovery.k8s.io/v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        api_version: "discovery.k8s.io/v1",
        namespaced: true,
        fields: &[],
    },
    Resource {
        root: "/apis/networking.k8s.io/v1",
        plural: "ingresses",
        kind: "Ingress",
        api_version: "networking.k8s.io/v1",
        namespaced: true,
        fields: &[],
    },
];

const QUERY_PARAMS: &[&str] = &[
    "watch",
    "resourceVersion",
    "resourceVersionMatch",
    "allowWatchBookmarks",
    "timeoutSeconds",
    "limit",
    "continue",
    "labelSelector",
    "fieldSelector",
    "pretty",
    "sendInitialEvents",
];

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub status: u16,
}

struct Event {
    rv: u64,
    resource: &'static str,
    old: Option<Value>,
    new: Value,
    deleted: bool,
}

struct State {
    rv: u64,
    /// By (plural, namespace, name).
    objects: BTreeMap<(&'static str, String, String), Value>,
    events: Vec<Event>,
    /// Events at or below this version are compacted: a watch from there is 410.
    compacted: u64,
    /// Bearer token -> the resources its role may list and watch (`None`: all).
    tokens: HashMap<String, Option<Vec<&'static str>>>,
    scripted: VecDeque<u16>,
    requests: Vec<SeenRequest>,
    /// Bumped to end every open watch (an API server restart).
    generation: u64,
    bookmark_every: Duration,
}

/// The fake API server.
#[derive(Clone)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    addr: SocketAddr,
    https: bool,
}

/// What the fake serves HTTPS with.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl FakeApiServer {
    /// Serves plain HTTP on a free port of 127.0.0.1; `token` is valid for every resource.
    pub async fn start(token: &str) -> FakeApiServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), token, None).await
    }

    /// Serves on `addr` (HTTPS with `tls`).
    pub async fn start_on(addr: SocketAddr, token: &str, tls: Option<ServerTls>) -> FakeApiServer {
        let listener = TcpListener::bind(addr).await.expect("bind fake API server");
        let addr = listener.local_addr().unwrap();
        let mut tokens = HashMap::new();
        tokens.insert(token.to_string(), None);
        let server = FakeApiServer {
            state: Arc::new(Mutex::new(State {
                rv: 100,
                objects: BTreeMap::new(),
                events: Vec::new(),
                compacted: 0,
                tokens,
                scripted: VecDeque::new(),
                requests: Vec::new(),
                generation: 0,
                bookmark_every: Duration::from_secs(1),
            })),
            changed: Arc::new(Notify::new()),
            addr,
            https: tls.is_some(),
        };
        let acceptor = tls.map(|t| {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(sock).await {
                                s.serve(tls).await;
                            }
                        }
                        None => s.serve(sock).await,
                    }
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `token` valid, for `resources` only (`None`: all), as a role binding would.
    pub fn grant(&self, token: &str, resources: Option<Vec<&'static str>>) {
        self.lock().tokens.insert(token.to_string(), resources);
    }

    /// Makes `token` invalid (it expired).
    pub fn revoke(&self, token: &str) {
        self.lock().tokens.remove(token);
    }

    /// The next `n` requests are answered `code` with a Status body.
    pub fn fail_next(&self, n: usize, code: u16) {
        let mut st = self.lock();
        st.scripted.extend(std::iter::repeat_n(code, n));
    }

    /// Forgets every event up to now: a watch from an older version gets 410 Gone.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.compacted = st.rv;
        st.events.clear();
    }

    /// Ends every open watch (as an API server restart does).
    pub fn cut_watches(&self) {
        self.lock().generation += 1;
        self.changed.notify_waiters();
    }

    pub fn set_bookmark_interval(&self, every: Duration) {
        self.lock().bookmark_every = every;
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().requests.clone()
    }

    /// Creates or replaces an object (any k8s-openapi resource), stamping
    /// `resourceVersion`, and tells the watchers.
    pub fn apply<T: k8s_openapi::Resource + serde::Serialize>(&self, obj: &T) {
        let mut st = self.lock();
        Self::apply_locked(&mut st, obj);
        drop(st);
        self.changed.notify_waiters();
    }

    /// An API server restart during which `obj` was written and etcd compacted: every
    /// watch ends, and one resumed from before `obj` gets 410 Gone.
    pub fn restart_compacted_after<T: k8s_openapi::Resource + serde::Serialize>(&self, obj: &T) {
        let mut st = self.lock();
        st.generation += 1;
        Self::apply_locked(&mut st, obj);
        st.compacted = st.rv;
        st.events.clear();
        drop(st);
        self.changed.notify_waiters();
    }

    fn apply_locked<T: k8s_openapi::Resource + serde::Serialize>(st: &mut State, obj: &T) {
        let mut v = serde_json::to_value(obj).unwrap();
        let res = resource_of(T::URL_PATH_SEGMENT);
        st.rv += 1;
        let rv = st.rv;
        let meta = v["metadata"].as_object_mut().expect("object has metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!("2026-12-01T00:00:00Z"));
        let key = key_of(res, &v);
        let old = st.objects.insert(key, v.clone());
        st.events.push(Event {
            rv,
            resource: res.plural,
            old,
            new: v,
            deleted: false,
        });
    }

    /// Deletes an object; `false` if there was none.
    pub fn delete<T: k8s_openapi::Resource>(&self, namespace: &str, name: &str) -> bool {
        let res = resource_of(T::URL_PATH_SEGMENT);
        let ns = if res.namespaced { namespace } else { "" };
        let mut st = self.lock();
        let Some(mut old) = st
            .objects
            .remove(&(res.plural, ns.to_string(), name.to_string()))
        else {
            return false;
        };
        st.rv += 1;
        let rv = st.rv;
        old["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.events.push(Event {
            rv,
            resource: res.plural,
            old: Some(old.clone()),
            new: old,
            deleted: true,
        });
        drop(st);
        self.changed.notify_waiters();
        true
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, sock: S) {
        let mut reader = BufReader::new(sock);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (path, query_string) = target.split_once('?').unwrap_or((&target, ""));
        let mut query = BTreeMap::new();
        for (k, v) in url_pairs(query_string) {
            query.insert(k, v);
        }
        let mut sock = reader.into_inner();
        let outcome = self.handle(&method, path, &query, &headers);
        let status = match &outcome {
            Outcome::Reply(code, _) => *code,
            Outcome::Watch(_) => 200,
        };
        self.lock().requests.push(SeenRequest {
            path: path.to_string(),
            query: query.clone(),
            status,
        });
        match outcome {
            Outcome::Reply(code, body) => {
                let body = body.to_string();
                let head = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reason_phrase(code),
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
            Outcome::Watch(w) => self.stream_watch(sock, w).await,
        }
    }

    fn handle(
        &self,
        method: &str,
        path: &str,
        query: &BTreeMap<String, String>,
        headers: &HashMap<String, String>,
    ) -> Outcome {
        let mut st = self.lock();
        if let Some(code) = st.scripted.pop_front() {
            return status(code, "Failure", "scripted failure", reason_phrase(code));
        }
        let token = headers
            .get("authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        let Some(grant) = token.and_then(|t| st.tokens.get(t)) else {
            return status(401, "Unauthorized", "Unauthorized", "Unauthorized");
        };
        let grant = grant.clone();
        if let Some(accept) = headers.get("accept")
            && !accept.contains("application/json")
            && !accept.contains("*/*")
        {
            return status(
                406,
                "NotAcceptable",
                "only application/json is served",
                "Not Acceptable",
            );
        }
        let Some((res, namespace)) = route(path) else {
            return not_found();
        };
        if method != "GET" {
            return status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                "Method Not Allowed",
            );
        }
        let watching = match query.get("watch").map(String::as_str) {
            None => false,
            Some(v) => match parse_go_bool(v) {
                Some(b) => b,
                None => return bad_request(&format!("invalid boolean value {v:?} for watch")),
            },
        };
        let verb = if watching { "watch" } else { "list" };
        if let Some(allowed) = &grant
            && !allowed.contains(&res.plural)
        {
            let scope = match &namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            let group = res
                .api_version
                .rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            return status(
                403,
                "Forbidden",
                &format!(
                    "{} is forbidden: User \"system:serviceaccount:logging:tailward\" cannot {verb} resource \"{}\" in API group \"{group}\" {scope}",
                    res.plural, res.plural
                ),
                "Forbidden",
            );
        }
        for k in query.keys() {
            if !QUERY_PARAMS.contains(&k.as_str()) {
                return bad_request(&format!("unknown query parameter {k:?}"));
            }
        }
        for k in ["limit", "timeoutSeconds"] {
            if let Some(v) = query.get(k)
                && v.parse::<u64>().is_err()
            {
                return bad_request(&format!("{k}: invalid value {v:?}: expected an integer"));
            }
        }
        let labels =
            match parse_labels(query.get("labelSelector").map(String::as_str).unwrap_or("")) {
                Ok(l) => l,
                Err(e) => return bad_request(&format!("unable to parse requirement: {e}")),
            };
        let fields =
            match parse_fields(query.get("fieldSelector").map(String::as_str).unwrap_or("")) {
                Ok(f) => f,
                Err(e) => return bad_request(&format!("invalid field selector: {e}")),
            };
        for (k, _, _) in &fields {
            let common = k == "metadata.name" || (res.namespaced && k == "metadata.namespace");
            if !common && !res.fields.contains(&k.as_str()) {
                return bad_request(&format!(
                    "Unable to find {{\"{}\" \"{}\"}} that match field selector: field label not supported: {k}",
                    res.api_version, res.plural
                ));
            }
        }
        let filter = Filter {
            resource: res.plural,
            namespace: namespace.clone(),
            labels,
            fields,
        };
        let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
        if watching {
            let from = if rv_param.is_empty() || rv_param == "0" {
                None
            } else {
                match rv_param.parse::<u64>() {
                    Ok(v) => Some(v),
                    Err(_) => {
                        return bad_request(&format!("invalid resource version {rv_param:?}"));
                    }
                }
            };
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map(Duration::from_secs);
            let bookmarks = query
                .get("allowWatchBookmarks")
                .and_then(|b| parse_go_bool(b))
                .unwrap_or(false);
            return Outcome::Watch(WatchReq {
                res_kind: res.kind,
                api_version: res.api_version,
                filter,
                from,
                timeout,
                bookmarks,
                generation: st.generation,
            });
        }
        // A list.
        let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let (list_rv, offset) = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(c) => match c
                .split_once(':')
                .and_then(|(r, o)| Some((r.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
            {
                Some((r, o)) if r > st.compacted || r == st.rv => (r, o),
                Some(_) => {
                    return status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result.",
                        "Gone",
                    );
                }
                None => return bad_request("invalid continue token"),
            },
            None => (st.rv, 0),
        };
        let _ = &mut st;
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((p, _, _), v)| *p == res.plural && filter.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        let page_end = if limit == 0 {
            items.len()
        } else {
            (offset + limit).min(items.len())
        };
        let page: Vec<Value> = items[offset.min(items.len())..page_end]
            .iter()
            .map(|v| {
                let mut v = v.clone();
                // List items carry no kind/apiVersion, as the API server writes them.
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                    o.remove("apiVersion");
                }
                v
            })
            .collect();
        let mut metadata = json!({"resourceVersion": list_rv.to_string()});
        if page_end < items.len() {
            metadata["continue"] = json!(format!("{list_rv}:{page_end}"));
        }
        Outcome::Reply(
            200,
            json!({
                "kind": format!("{}List", res.kind),
                "apiVersion": res.api_version,
                "metadata": metadata,
                "items": page,
            }),
        )
    }

    async fn stream_watch<S: AsyncWrite + Unpin>(&self, mut sock: S, w: WatchReq) {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let deadline = w.timeout.map(|t| Instant::now() + t);
        // What to send first: a 410 for a compacted version, else (for version 0 or none)
        // every current object as ADDED, then the events after the version.
        let (first, mut sent_rv, gone): (Vec<Value>, u64, bool) = {
            let st = self.lock();
            match w.from {
                Some(from) if from < st.compacted => (
                    vec![json!({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure",
                        "message": format!("too old resource version: {from} ({})", st.compacted + 1),
                        "reason": "Expired", "code": 410}})],
                    0,
                    true,
                ),
                Some(from) => (Vec::new(), from, false),
                None => (
                    st.objects
                        .iter()
                        .filter(|((p, _, _), v)| *p == w.filter.resource && w.filter.matches(v))
                        .map(|(_, v)| json!({"type": "ADDED", "object": v}))
                        .collect(),
                    st.rv,
                    false,
                ),
            }
        };
        for ev in first {
            if write_chunk(&mut sock, &ev).await.is_err() {
                return;
            }
        }
        if gone {
            let _ = sock.write_all(b"0\r\n\r\n").await;
            return;
        }
        let mut last_bookmark = Instant::now();
        loop {
            let notified = self.changed.notified();
            let (events, generation, bookmark_every, current_rv) = {
                let st = self.lock();
                if st.generation != w.generation {
                    break;
                }
                let evs: Vec<Value> = st
                    .events
                    .iter()
                    .filter(|e| e.rv > sent_rv && e.resource == w.filter.resource)
                    .filter_map(|e| w.filter.event_for(e))
                    .collect();
                if let Some(last) = st.events.last() {
                    sent_rv = sent_rv.max(last.rv);
                }
                (evs, st.generation, st.bookmark_every, st.rv)
            };
            for ev in events {
                if write_chunk(&mut sock, &ev).await.is_err() {
                    return;
                }
            }
            if generation != w.generation {
                break;
            }
            if w.bookmarks && last_bookmark.elapsed() >= bookmark_every {
                let ev = json!({"type": "BOOKMARK", "object": {
                    "kind": w.res_kind, "apiVersion": w.api_version,
                    "metadata": {"resourceVersion": current_rv.max(sent_rv).to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}});
                if write_chunk(&mut sock, &ev).await.is_err() {
                    return;
                }
                last_bookmark = Instant::now();
            }
            let mut wait = Duration::from_millis(200);
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                wait = wait.min(left);
            }
            let _ = tokio::time::timeout(wait, notified).await;
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
        let _ = sock.shutdown().await;
    }
}

async fn write_chunk<S: AsyncWrite + Unpin>(sock: &mut S, ev: &Value) -> std::io::Result<()> {
    let mut line = ev.to_string();
    line.push('\n');
    sock.write_all(format!("{:x}\r\n", line.len()).as_bytes())
        .await?;
    sock.write_all(line.as_bytes()).await?;
    sock.write_all(b"\r\n").await?;
    sock.flush().await
}

struct WatchReq {
    res_kind: &'static str,
    api_version: &'static str,
    filter: Filter,
    from: Option<u64>,
    timeout: Option<Duration>,
    bookmarks: bool,
    generation: u64,
}

enum Outcome {
    Reply(u16, Value),
    Watch(WatchReq),
}

fn status(code: u16, reason: &str, message: &str, _phrase: &str) -> Outcome {
    Outcome::Reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn bad_request(message: &str) -> Outcome {
    status(400, "BadRequest", message, "Bad Request")
}

fn not_found() -> Outcome {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        "Not Found",
    )
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn resource_of(plural: &str) -> &'static Resource {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .unwrap_or_else(|| panic!("the fake does not serve {plural}"))
}

fn key_of(res: &Resource, v: &Value) -> (&'static str, String, String) {
    let ns = if res.namespaced {
        v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    let name = v["metadata"]["name"]
        .as_str()
        .expect("object has a name")
        .to_string();
    (res.plural, ns, name)
}

/// `/api/v1/pods`, `/api/v1/namespaces/ns/pods`, `/apis/<group>/<version>/...`.
fn route(path: &str) -> Option<(&'static Resource, Option<String>)> {
    for res in RESOURCES {
        let Some(rest) = path.strip_prefix(res.root) else {
            continue;
        };
        if rest == format!("/{}", res.plural) {
            return Some((res, None));
        }
        if let Some(tail) = rest.strip_prefix("/namespaces/") {
            let (ns, what) = tail.split_once('/')?;
            if res.namespaced && what == res.plural && !ns.is_empty() {
                return Some((res, Some(ns.to_string())));
            }
        }
    }
    None
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Debug)]
enum LabelReq {
    Exists(String, bool),
    Eq(String, String, bool),
    Set(String, Vec<String>, bool),
}

/// `labels.Parse`, independently of the agent's parser.
fn parse_labels(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    // Split on commas outside parentheses.
    let mut terms = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    let valid_key = |k: &str| {
        let name = k.rsplit('/').next().unwrap_or("");
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && k.matches('/').count() <= 1
    };
    let valid_value = |v: &str| {
        v.is_empty()
            || (v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
    };
    for t in terms {
        let t = t.trim();
        let req = if let Some(k) = t.strip_prefix('!') {
            LabelReq::Exists(k.trim().to_string(), false)
        } else if let Some((k, v)) = t.split_once("!=") {
            LabelReq::Eq(k.trim().into(), v.trim().into(), false)
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            LabelReq::Eq(k.trim().into(), v.trim().into(), true)
        } else if let Some((k, set)) = t.split_once(" notin ").or_else(|| t.split_once(" in ")) {
            let positive = !t.contains(" notin ");
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .ok_or_else(|| format!("{t:?}: expected a parenthesised set"))?;
            LabelReq::Set(
                k.trim().into(),
                inner.split(',').map(|x| x.trim().to_string()).collect(),
                positive,
            )
        } else {
            LabelReq::Exists(t.to_string(), true)
        };
        let (key, values): (&str, Vec<&str>) = match &req {
            LabelReq::Exists(k, _) => (k, vec![]),
            LabelReq::Eq(k, v, _) => (k, vec![v.as_str()]),
            LabelReq::Set(k, vs, _) => (k, vs.iter().map(String::as_str).collect()),
        };
        if !valid_key(key) {
            return Err(format!("invalid label key {key:?}"));
        }
        if let Some(v) = values.iter().find(|v| !valid_value(v) || v.contains(' ')) {
            return Err(format!("invalid label value {v:?}"));
        }
        out.push(req);
    }
    Ok(out)
}

/// `fields.ParseSelector`: `k=v`, `k==v`, `k!=v`, comma-separated.
fn parse_fields(s: &str) -> Result<Vec<(String, bool, String)>, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for t in s.split(',') {
        let (k, eq, v) = if let Some((k, v)) = t.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            (k, true, v)
        } else {
            return Err(format!("{t:?} is not key=value"));
        };
        if k.trim().is_empty() {
            return Err(format!("{t:?} has no field name"));
        }
        out.push((k.trim().to_string(), eq, v.to_string()));
    }
    Ok(out)
}

struct Filter {
    resource: &'static str,
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    fn matches(&self, v: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && v["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        let labels = &v["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Exists(k, want) => label(k).is_some() == *want,
            LabelReq::Eq(k, val, want) => (label(k) == Some(val.as_str())) == *want,
            LabelReq::Set(k, vs, true) => label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Set(k, vs, false) => !label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        });
        let fields_ok = self.fields.iter().all(|(k, eq, want)| {
            let mut cur = v;
            for part in k.split('.') {
                cur = &cur[part];
            }
            let got = match cur {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *eq
        });
        labels_ok && fields_ok
    }

    /// The watch event a change is, seen through this filter: entering it is ADDED, leaving
    /// it DELETED, as the API server's watch cache sends them.
    fn event_for(&self, e: &Event) -> Option<Value> {
        let was = e.old.as_ref().is_some_and(|o| self.matches(o));
        let is = !e.deleted && self.matches(&e.new);
        let kind = match (was, is) {
            (false, true) => "ADDED",
            (true, true) => "MODIFIED",
            (true, false) => "DELETED",
            (false, false) => return None,
        };
        let _ = self.resource;
        Some(json!({"type": kind, "object": e.new}))
    }
}
