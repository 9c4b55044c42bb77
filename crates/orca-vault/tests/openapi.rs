//! The OpenAPI document: served without a token, generated from the same annotations as the
//! routes, and every route the vault answers is in it (probed, not trusted).

mod common;

use std::collections::BTreeSet;

use common::Vault;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The routes that write the repository's disk: a full one answers 507, and they say so.
const WRITES_REPOSITORY: [&str; 9] = [
    "PUT /api/v1/chunks",
    "POST /api/v1/flush",
    "POST /api/v1/pieces",
    "DELETE /api/v1/pieces",
    "POST /api/v1/recovery-points",
    "DELETE /api/v1/recovery-points/{id}",
    "POST /api/v1/jobs",
    "PATCH /api/v1/jobs/{id}",
    "PUT /api/v1/agents/{database}",
];

#[test]
fn the_document_describes_every_route_the_vault_serves() {
    let v = Vault::start();
    let ans = v.raw("GET", "/api/v1/openapi.json", None, b"");
    assert_eq!(ans.status, 200, "{ans:?}");
    let doc = ans.json();
    assert_eq!(
        doc,
        orca_vault::server::openapi()
            .to_json()
            .map(|s| serde_json::from_str::<serde_json::Value>(&s).unwrap())
            .unwrap()
    );
    for schema in [
        "ErrorBody",
        "Ids",
        "PieceInfo",
        "PieceMeta",
        "RecoveryPoint",
        "NewRecoveryPoint",
        "Job",
        "JobUpdate",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "no schema {schema}"
        );
    }

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "some-id");
        for method in METHODS {
            let op = &item[method.to_ascii_lowercase()];
            let ans = v.raw(method, &concrete, None, b"");
            if op.is_null() {
                // Served under another method only.
                assert_eq!(
                    ans.status, 405,
                    "{method} {path} is served but not documented: {ans:?}"
                );
                ans.json();
                continue;
            }
            documented.insert(format!("{method} {path}"));
            let secured = op["security"].is_array();
            if secured {
                assert_eq!(ans.status, 401, "{method} {path} without a token: {ans:?}");
                assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
            } else {
                assert_eq!(ans.status, 200, "{method} {path}: {ans:?}");
            }
            assert!(op["responses"]["4XX"]["content"]["application/json"].is_object());
            let full = &op["responses"]["507"];
            if WRITES_REPOSITORY.contains(&format!("{method} {path}").as_str()) {
                assert!(
                    full["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("the repository's disk is full"))
                        && full["content"]["application/json"].is_object(),
                    "{method} {path} does not document 507: {op}"
                );
            } else {
                assert!(full.is_null(), "{method} {path} writes nothing: {op}");
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /api/v1/config",
        "GET /api/v1/keys",
        "POST /api/v1/chunks/missing",
        "PUT /api/v1/chunks",
        "POST /api/v1/chunks/read",
        "POST /api/v1/chunks/values",
        "POST /api/v1/flush",
        "POST /api/v1/pieces",
        "GET /api/v1/pieces",
        "DELETE /api/v1/pieces",
        "GET /api/v1/pieces/info",
        "GET /api/v1/pieces/manifest",
        "POST /api/v1/recovery-points",
        "GET /api/v1/recovery-points",
        "GET /api/v1/recovery-points/{id}",
        "DELETE /api/v1/recovery-points/{id}",
        "POST /api/v1/jobs",
        "GET /api/v1/jobs",
        "GET /api/v1/jobs/{id}",
        "PATCH /api/v1/jobs/{id}",
        "GET /api/v1/whoami",
        "POST /api/v1/sessions",
        "POST /api/v1/sessions/{id}/lineage",
        "POST /api/v1/sessions/{id}/renew",
        "DELETE /api/v1/sessions/{id}",
        "PUT /api/v1/agents/{database}",
        "GET /api/v1/agents/{database}",
        "GET /api/v1/transfers/{command_id}",
        "GET /api/v1/overview",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, expected);
    // Anything else is not a route.
    let ans = v.raw("GET", "/api/v2/pieces", None, b"");
    assert_eq!(ans.status, 404);
    ans.json();
}
