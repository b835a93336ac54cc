use std::net::SocketAddr;

use super::data::{Crm, Stage};
use super::{FULL_KEY_ID, READ_KEY_ID, banner, demo_setup, pipeline};
use crate::auth::api_key::{check_format, hash_hex};

#[test]
fn searches_find_records_by_name_company_and_stage() {
    let crm = Crm::seeded();
    let acme: Vec<_> = crm
        .search_deals("acme")
        .iter()
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(acme, ["deal-1", "deal-2"]);
    assert_eq!(crm.search_deals("NEGOTIATION").len(), 1);
    assert!(crm.search_deals("no such thing").is_empty());
    assert_eq!(crm.search_contacts("globex")[0].name, "Chloe Nakamura");
    assert_eq!(crm.search_companies("health")[0].id, "company-4");
}

#[test]
fn ask_pipeline_names_the_largest_open_deal() {
    let crm = Crm::seeded();
    let answer = pipeline::ask(&crm, "What is the largest open deal?");
    assert_eq!(answer["data"]["id"], "deal-6");
    assert!(answer["answer"].as_str().unwrap().contains("210000"));
}

#[test]
fn ask_pipeline_totals_by_stage_and_by_named_stage() {
    let crm = Crm::seeded();
    let summary = pipeline::ask(&crm, "pipeline totals by stage");
    // Open: 120k + 45k + 80k + 9k + 210k.
    assert_eq!(summary["data"]["open_total"], 464_000);
    assert_eq!(summary["data"]["by_stage"].as_array().unwrap().len(), 6);
    let won = pipeline::ask(&crm, "how much have we closed won?");
    assert_eq!(won["data"]["total"], 38_500);
    assert_eq!(won["data"]["count"], 2);
    let proposal = pipeline::ask(&crm, "deals in proposal");
    assert_eq!(proposal["data"]["total"], 255_000);
}

#[test]
fn created_deal_is_readable_and_searchable() {
    let mut crm = Crm::seeded();
    let id = crm
        .create_deal(
            "Initech expansion".into(),
            "company-3".into(),
            50_000,
            None,
            None,
        )
        .unwrap()
        .id
        .clone();
    let deal = crm.deal(&id).unwrap();
    assert_eq!(deal.stage, Stage::Lead);
    assert_eq!(deal.amount, 50_000);
    assert!(crm.search_deals("expansion").iter().any(|d| d.id == id));
    assert!(
        crm.create_deal("x".into(), "company-99".into(), 1, None, None)
            .is_err()
    );
}

#[test]
fn stage_updates_move_pipeline_totals() {
    let mut crm = Crm::seeded();
    crm.update_deal_stage("deal-6", Stage::ClosedWon).unwrap();
    assert_eq!(crm.largest_open_deal().unwrap().id, "deal-1");
    assert_eq!(crm.totals_by_stage()[&Stage::ClosedWon], (3, 248_500));
}

#[tokio::test]
async fn demo_server_create_deal_then_get_deal_through_the_tools() {
    use rmcp::handler::server::wrapper::Parameters;
    let server = super::DemoServer::new();
    let created = server
        .create_deal(Parameters(super::tools::CreateDeal {
            name: "Globex renewal".into(),
            company_id: "company-2".into(),
            amount: 12_345,
            stage: Some(Stage::Proposal),
            close_date: None,
        }))
        .unwrap();
    let text = &created.content[0].as_text().unwrap().text;
    let id = serde_json::from_str::<serde_json::Value>(text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = server
        .get_deal(Parameters(super::tools::Id { id }))
        .unwrap();
    let got: serde_json::Value =
        serde_json::from_str(&got.content[0].as_text().unwrap().text).unwrap();
    assert_eq!(got["deal"]["amount"], 12_345);
    assert_eq!(got["deal"]["stage"], "proposal");
}

#[test]
fn demo_policy_holds_key_hashes_never_keys() {
    let gateway: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
    let upstream: SocketAddr = "127.0.0.1:3001".parse().unwrap();
    let setup = demo_setup(gateway, admin, upstream);
    let yaml = &setup.policy_yaml;
    assert_eq!(check_format(setup.full_key.expose()), Ok(()));
    assert_ne!(setup.full_key, setup.read_key);
    for key in [&setup.full_key, &setup.read_key] {
        assert!(yaml.contains(&hash_hex(key.expose())));
        assert!(!yaml.contains(key.expose()));
    }

    let doc: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["server"]["listen"], "127.0.0.1:8080");
    assert_eq!(doc["server"]["admin_listen"], "127.0.0.1:9090");
    assert_eq!(doc["upstream"]["url"], "http://127.0.0.1:3001");
    assert_eq!(doc["tools"].as_array().unwrap().len(), 5);
    let demo = &doc["workspaces"]["demo"];
    assert_eq!(demo["scopes"].as_array().unwrap().len(), 5);
    assert_eq!(demo["features"][0], "signal");
    let keys = demo["keys"].as_array().unwrap();
    assert_eq!(keys[0]["id"], FULL_KEY_ID);
    assert!(keys[0].get("scopes").is_none());
    assert_eq!(keys[1]["id"], READ_KEY_ID);
    assert_eq!(
        keys[1]["scopes"],
        serde_json::json!(["crm:read", "signal:read", "pipeline:read"])
    );
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date();
    assert_eq!(keys[1]["created"], today.to_string());
}

#[test]
fn demo_policy_quotes_ipv6_addresses() {
    let v6: SocketAddr = "[::1]:8080".parse().unwrap();
    let setup = demo_setup(v6, v6, v6);
    let doc: serde_json::Value = serde_saphyr::from_str(&setup.policy_yaml).unwrap();
    assert_eq!(doc["server"]["listen"], "[::1]:8080");
    assert_eq!(doc["upstream"]["url"], "http://[::1]:8080");
}

#[test]
fn banner_shows_url_keys_curl_and_client_config() {
    let gateway: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
    let setup = demo_setup(gateway, admin, "127.0.0.1:3001".parse().unwrap());
    let text = banner(&setup, gateway, admin);
    assert!(text.contains("http://127.0.0.1:8080/mcp"));
    assert!(text.contains(setup.full_key.expose()));
    assert!(text.contains(setup.read_key.expose()));
    assert!(text.contains("Accept: application/json, text/event-stream"));
    assert!(text.contains(r#""X-API-Key": "${MCPWARDEN_KEY}""#));
    assert!(text.contains(&format!("export MCPWARDEN_KEY={}", setup.full_key.expose())));
}
