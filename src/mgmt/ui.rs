//! The web UI's static files, embedded in the binary and served at `/` by the management
//! listener without authentication (the page logs in against /api/whoami and sends basic auth
//! with every API call). Plain HTML, CSS and JavaScript in `ui/`, no build step, nothing loaded
//! from elsewhere (the Content-Security-Policy says so to the browser too).

use hyper::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};

use super::server::{Resp, error, with_body};

/// (path, content type, bytes) of every file the UI is made of.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("ui/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("ui/app.js")),
    ("/admin.js", "text/javascript; charset=utf-8", include_bytes!("ui/admin.js")),
    ("/charts.js", "text/javascript; charset=utf-8", include_bytes!("ui/charts.js")),
    ("/core.js", "text/javascript; charset=utf-8", include_bytes!("ui/core.js")),
    ("/lists.js", "text/javascript; charset=utf-8", include_bytes!("ui/lists.js")),
    ("/objects.js", "text/javascript; charset=utf-8", include_bytes!("ui/objects.js")),
    ("/overview.js", "text/javascript; charset=utf-8", include_bytes!("ui/overview.js")),
    ("/table.js", "text/javascript; charset=utf-8", include_bytes!("ui/table.js")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("ui/style.css")),
    ("/favicon.svg", "image/svg+xml", include_bytes!("ui/favicon.svg")),
];

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'";

/// The file at `path` (`/index.html` is `/`), or None if the UI has no such file.
pub fn serve(method: &hyper::Method, path: &str) -> Option<Resp> {
    let path = if path == "/index.html" { "/" } else { path };
    let (_, content_type, bytes) = FILES.iter().find(|(p, _, _)| *p == path)?;
    if method != Method::GET && method != Method::HEAD {
        return Some(error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed"));
    }
    let mut r = with_body(StatusCode::OK, content_type, *bytes);
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_and_others_are_not() {
        for (path, _, bytes) in FILES {
            let r = serve(&Method::GET, path).unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert!(!bytes.is_empty(), "{path}");
        }
        assert!(serve(&Method::GET, "/index.html").is_some());
        assert!(serve(&Method::GET, "/etc/passwd").is_none());
        assert_eq!(serve(&Method::POST, "/app.js").unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (path, _, bytes) in FILES {
            // The SVG namespace is a name, not a place anything is loaded from.
            let text = String::from_utf8_lossy(bytes).replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"), "{path} names another site");
        }
    }
}
