//! The OpenAPI document as served for the zero-config demo setup plus one external kind, kept
//! as a snapshot: any change to what the API documents shows up in review
//! (`INSTA_UPDATE=always cargo nextest run -p genq-api --test openapi` accepts a change).

#[test]
fn the_openapi_document_is_reviewed() {
    let config = genq_config::Config::from_toml(
        "test.toml",
        r#"
[[providers]]
name = "demo"
type = "demo"

[[kinds]]
name = "card.generate"
provider = "demo"

[[kinds]]
name = "report.weekly"
external = true
"#,
        &Default::default(),
    )
    .unwrap();
    insta::assert_json_snapshot!("openapi", genq_api::openapi::document(&config));
}
