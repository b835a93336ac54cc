//! `ask_pipeline`: answers simple questions about the sales pipeline from the CRM's data.
//!
//! It is keyword matching, not language understanding: it recognises questions about the
//! largest deal, totals by stage, won revenue, and one stage's deals, and otherwise answers
//! with a summary of the whole pipeline. Every answer carries the figures it was built from.

use serde_json::{Value, json};

use super::data::{Crm, Stage};

/// A sentence answering `question`, and the data behind it.
pub fn ask(crm: &Crm, question: &str) -> Value {
    let q = question.to_lowercase();
    let (answer, data) = if q.contains("largest") || q.contains("biggest") {
        largest_open(crm)
    } else if let Some(stage) = named_stage(&q) {
        stage_deals(crm, stage)
    } else if q.contains("won") || q.contains("revenue") {
        stage_deals(crm, Stage::ClosedWon)
    } else {
        summary(crm)
    };
    json!({ "question": question, "answer": answer, "data": data })
}

fn named_stage(q: &str) -> Option<Stage> {
    // "closed won"/"closed lost" are spelled with a space as often as with an underscore.
    let q = q.replace(' ', "_");
    Stage::ALL
        .into_iter()
        .rev()
        .find(|s| q.contains(s.as_str()))
}

fn largest_open(crm: &Crm) -> (String, Value) {
    match crm.largest_open_deal() {
        Some(deal) => {
            let company = crm
                .company(&deal.company_id)
                .map(|c| c.name.as_str())
                .unwrap_or("?");
            (
                format!(
                    "The largest open deal is {} ({}) at ${} in stage {}.",
                    deal.name,
                    company,
                    deal.amount,
                    deal.stage.as_str()
                ),
                json!(deal),
            )
        }
        None => ("There are no open deals.".to_string(), Value::Null),
    }
}

fn stage_deals(crm: &Crm, stage: Stage) -> (String, Value) {
    let deals = crm.list_deals(Some(stage));
    let total: u64 = deals.iter().map(|d| d.amount).sum();
    (
        format!(
            "{} deal(s) in stage {} totalling ${total}.",
            deals.len(),
            stage.as_str()
        ),
        json!({ "stage": stage, "count": deals.len(), "total": total, "deals": deals }),
    )
}

fn summary(crm: &Crm) -> (String, Value) {
    let totals = crm.totals_by_stage();
    let open: u64 = totals
        .iter()
        .filter(|(s, _)| s.is_open())
        .map(|(_, (_, amount))| amount)
        .sum();
    let open_count: usize = totals
        .iter()
        .filter(|(s, _)| s.is_open())
        .map(|(_, (count, _))| count)
        .sum();
    let by_stage: Vec<Value> = totals
        .iter()
        .map(|(stage, (count, total))| json!({ "stage": stage, "count": count, "total": total }))
        .collect();
    let largest = crm
        .largest_open_deal()
        .map(|d| json!({ "id": d.id, "name": d.name, "amount": d.amount }));
    (
        format!("The open pipeline holds {open_count} deal(s) worth ${open} in total."),
        json!({ "open_total": open, "open_count": open_count, "by_stage": by_stage, "largest_open_deal": largest }),
    )
}
