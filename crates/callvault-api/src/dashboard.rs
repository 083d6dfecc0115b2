//! The browser dashboard: a few static files (HTML, CSS, JavaScript modules, an icon) embedded
//! in the binary with `include_bytes!`, served at `/` beside the API they are a client of.
//!
//! **No build step.** The files under `crates/callvault-api/dashboard/` are what the browser
//! runs: plain ES modules and CSS, no bundler, no framework, no CDN. A compact app of a few
//! pages does not need a toolchain, and without one what is reviewed is what is served (nothing
//! generated to keep in step, nothing to install to build the server).
//!
//! **Pages are client-side.** `/`, `/recordings`, `/recordings/{id}`, `/live`, `/audit`,
//! `/users` and `/sign-in` all answer the same `index.html`; the app reads the path and draws the
//! page through the API. Anything else that is not the API is 404.
//!
//! **Headers.** Every response carries a strict Content-Security-Policy (scripts, styles,
//! media and API calls from this origin only; no inline script or style, no frames, no plugins,
//! no `<base>`), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `X-Frame-Options: DENY`. Files are `Cache-Control: no-cache` with a strong `ETag` (SHA-256 of
//! the content): a browser revalidates each file and gets `304 Not Modified` until the binary
//! changes, so an upgrade is never half-cached and a reload costs only small requests.
//! (Fingerprinted names with `immutable` would save the revalidations, but ES modules import
//! each other by name, which a build step would have to rewrite.)

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

/// What the dashboard's pages may load and do.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Under `/assets/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Every file under `/assets/`.
static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("filters.js", JS),
    asset!("player.js", JS),
    asset!("pages/sign-in.js", JS),
    asset!("pages/recordings.js", JS),
    asset!("pages/recording.js", JS),
    asset!("pages/live.js", JS),
    asset!("pages/audit.js", JS),
    asset!("pages/users.js", JS),
];

/// The paths the app draws a page for.
const PAGES: &[&str] = &[
    "/",
    "/sign-in",
    "/recordings",
    "/recordings/{id}",
    "/live",
    "/audit",
    "/users",
];

/// Strong ETags, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS)
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::try_from(format!("\"{hex}\"")).expect("hex in quotes is a header value")
        })
        .collect()
});

/// The dashboard's routes (pages and `/assets/…`), to merge beside the API.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/assets/{*name}", get(asset));
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &INDEX, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(i + 1, &ASSETS[i], &headers),
        None => with_security_headers(StatusCode::NOT_FOUND.into_response()),
    }
}

fn serve(index: usize, asset: &Asset, request: &HeaderMap) -> Response {
    let etag = ETAGS[index].clone();
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.body.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_security_headers(response)
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::builder().uri(path);
        if let Some(tag) = if_none_match {
            request = request.header(IF_NONE_MATCH, tag);
        }
        let response = routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, body)
    }

    #[tokio::test]
    async fn every_page_path_answers_the_app_with_a_strict_policy() {
        for path in [
            "/",
            "/recordings",
            "/recordings/0193-abc",
            "/live",
            "/audit",
        ] {
            let (status, headers, body) = get(path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(
                headers[CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY_VALUE
            );
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
            assert_eq!(body, INDEX.body);
        }
        let policy = CONTENT_SECURITY_POLICY_VALUE;
        assert!(policy.starts_with("default-src 'none'"));
        assert!(
            !policy.contains("unsafe"),
            "no inline script or style, no eval"
        );
        let page = String::from_utf8(INDEX.body.to_vec()).unwrap();
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "nothing inline"
        );
    }

    #[tokio::test]
    async fn files_have_their_types_and_revalidate_by_etag() {
        for (name, content_type) in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("pages/recording.js", "text/javascript; charset=utf-8"),
            ("app.css", "text/css; charset=utf-8"),
            ("icon.svg", "image/svg+xml"),
        ] {
            let (status, headers, body) = get(&format!("/assets/{name}"), None).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert_eq!(headers[CONTENT_TYPE], content_type, "{name}");
            assert_eq!(headers[CACHE_CONTROL], "no-cache");
            assert!(!body.is_empty());
            let etag = headers[ETAG].to_str().unwrap().to_owned();
            assert_eq!(etag.len(), 34, "{etag}");
            let (status, headers, body) = get(&format!("/assets/{name}"), Some(&etag)).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED);
            assert_eq!(headers[ETAG], etag.as_str());
            assert!(body.is_empty());
            let (status, _, _) = get(&format!("/assets/{name}"), Some("\"other\"")).await;
            assert_eq!(status, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn anything_else_is_not_found() {
        for path in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/recordings/a/b",
        ] {
            let (status, headers, _) = get(path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            if path.starts_with("/assets") {
                assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            }
        }
    }

    #[test]
    fn every_module_the_app_imports_is_embedded() {
        // An import of a file not in ASSETS would fail in the browser only: check them here.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            let dir = asset.name.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let Some(spec) = line.split(['\'', '"']).nth(1) else {
                    continue;
                };
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for part in spec.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        other => parts.push(other),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {spec}, which is not embedded",
                    asset.name
                );
            }
        }
    }
}
