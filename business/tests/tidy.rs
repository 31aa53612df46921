//! Architecture Invariant: only the data server writes balances. The business server must reach
//! the bank's state through the data server's API (`DataClient`), never by opening its store.

use std::path::Path;

#[test]
fn business_code_never_opens_the_data_servers_store() {
    let files = harness::rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(files.len() > 5, "found the business sources");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable file");
        for forbidden in ["RedbStore", "redb::", "store::Store", "writer::", "Application::build(dataserver"] {
            assert!(!text.contains(forbidden), "{} uses `{forbidden}`: go through DataClient", file.display());
        }
    }
}

/// Architecture Invariant: the OpenAPI document covers every route. Each `resource("...")`
/// registered under `src/` must be a path of `GET /openapi.json`'s document, with the same
/// methods as the routes registered on it.
#[test]
fn every_route_is_in_the_openapi_document() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(business::openapi::ApiDoc::openapi()).expect("serialisable");
    let paths = doc["paths"].as_object().expect("paths");
    let files = harness::rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut routes = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable file");
        let scopes = scopes(&text);
        let mut at = 0;
        for piece in text.split("resource(\"").skip(1) {
            at = text[at..].find("resource(\"").map_or(at, |i| at + i + 1);
            let Some((path, rest)) = piece.split_once('"') else { continue };
            if !path.starts_with('/') {
                continue;
            }
            let prefix = scopes.iter().find(|(range, _)| range.contains(&at)).map_or("", |(_, p)| p.as_str());
            let path = format!("{prefix}{path}");
            let path = path.as_str();
            routes += 1;
            let documented = paths.get(path).unwrap_or_else(|| panic!("{path} ({}) is not documented", file.display()));
            // The methods chained on this resource, up to the next one.
            let chain = rest.split("resource(\"").next().unwrap_or("");
            for m in ["get", "post", "put", "delete"] {
                if chain.contains(&format!("web::{m}()")) {
                    assert!(documented.get(m).is_some(), "{m} {path} is not documented");
                }
            }
        }
    }
    assert!(routes >= 30, "found the routes ({routes})");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "an OpenAPI 3 document");
}

/// Each `web::scope("P")` of a routes file: the byte range of the `.service(` call it is passed
/// to (up to that call's matching parenthesis) and its prefix P, which the resources in it are under.
fn scopes(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("web::scope(\"") {
        let prefix = text[at + "web::scope(\"".len()..].split('"').next().unwrap_or("").to_string();
        let open = text[..at].rfind('(').unwrap_or(at);
        let mut depth = 0usize;
        let mut end = text.len();
        for (i, c) in text[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 1 => {
                    end = open + i;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        found.push((open..end, prefix));
    }
    found
}
