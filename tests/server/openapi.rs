//! The OpenAPI documents: `GET /openapi.json` on the client and the admin listener parses as
//! OpenAPI 3, describes exactly the routes each listener registers (method and path), and
//! gives every operation at least one error response, its security and its path parameters.

use crate::common;

use std::collections::BTreeSet;

use common::TestServer;
use parlor::routes::RouteTable;
use serde_json::{json, Value};
use utoipa::openapi::OpenApi;

/// The `(METHOD, path)` pairs of a document.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "head", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn registered(table: &RouteTable) -> BTreeSet<(String, String)> {
    table
        .0
        .iter()
        .map(|(m, p)| (m.as_str().to_owned(), parlor::openapi::openapi_path(p)))
        .collect()
}

/// Checks one listener's document against its route table.
fn check(doc: &Value, table: &RouteTable) {
    let parsed: OpenApi = serde_json::from_value(doc.clone()).expect("an OpenAPI document");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(!parsed.paths.paths.is_empty());
    let (described, registered) = (described(doc), registered(table));
    let missing: Vec<_> = registered.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes the document does not describe: {missing:?}"
    );
    let extra: Vec<_> = described.difference(&registered).collect();
    assert!(extra.is_empty(), "documented routes that do not exist: {extra:?}");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (method, path) in &described {
        let op = &doc["paths"][path][method.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| !s.starts_with('2') && s != "101"),
            "{method} {path}: no error response"
        );
        for status in responses.keys() {
            let envelope = &responses[status]["content"]["application/json"]["schema"]["$ref"];
            if let Some(r) = envelope.as_str() {
                let name = r.trim_start_matches("#/components/schemas/");
                assert!(doc["components"]["schemas"][name].is_object(), "{path}: {r}");
            }
        }
        for param in path.split('/').filter_map(|s| s.strip_prefix('{')) {
            let name = param.trim_end_matches('}');
            let params = op["parameters"].as_array().expect("path parameters");
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{method} {path}: no path parameter {name}"
            );
        }
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{path}: unknown scheme {scheme}");
            }
        }
    }
}

#[actix_web::test]
async fn documents_describe_every_route_of_each_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.admin.secret = "openapi-test-admin-secret".into();
        c.admin.bind = "127.0.0.1:0".into();
    })
    .await;
    let (status, client) = server.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    check(&client, &RouteTable::client());
    let admin_url = format!("http://{}/openapi.json", server.admin.unwrap());
    let resp = server.http.get(&admin_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let admin: Value = resp.json().await.unwrap();
    check(&admin, &RouteTable::admin());

    // Each listener describes its own routes only.
    assert!(client["paths"]["/admin/export"].is_null());
    assert!(admin["paths"]["/api/regChat"].is_null());
    // Form-or-JSON routes take both; the admin face JSON; the three admin headers go together.
    let reg = &client["paths"]["/api/regChat"]["post"]["requestBody"]["content"];
    assert!(reg["application/x-www-form-urlencoded"].is_object() && reg["application/json"].is_object());
    let chat21 = &client["paths"]["/api/{app_id}/messages"]["post"];
    assert!(chat21["requestBody"]["content"]["application/x-www-form-urlencoded"].is_null());
    assert_eq!(chat21["security"][0]["authorization"], serde_json::json!([]));
    let signed = &admin["paths"]["/admin/robot/create"]["post"]["security"][0];
    for header in ["nonce", "timestamp", "sign"] {
        assert!(signed[header].is_array(), "{signed}");
    }
    assert_eq!(
        client["paths"]["/api/loginChat"]["post"]["responses"]["400"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/UniAppFail"
    );
    // An unknown route is not described and is still answered in the uni-app envelope.
    let (status, body) = server.get("/no/such/route", None).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"msg": "fail", "data": "no such route"}));
    server.stop().await;
}

#[test]
fn a_route_missing_from_the_document_is_caught() {
    // A table with one more route than the server has: the check names it.
    let doc = serde_json::to_value(parlor::openapi::client()).unwrap();
    let mut table = RouteTable::client();
    table.0.push((actix_web::http::Method::GET, "/api/not/described"));
    let outcome = std::panic::catch_unwind(|| check(&doc, &table));
    let message = *outcome.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("/api/not/described"), "{message}");
}
