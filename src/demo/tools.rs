//! The demo's MCP tools: thin `rmcp` wrappers over [`Crm`](super::data::Crm) that answer in
//! JSON text.
//!
//! A missing record or a bad argument is a tool error (`isError: true` with the reason), not
//! a JSON-RPC error, so a model can read it and try again. The lock is held only while a
//! tool reads or writes, never across an `.await`.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rmcp::{
    ErrorData, ServerHandler,
    handler::server::wrapper::Parameters,
    model::{CallToolResult, ContentBlock},
    schemars::{self, JsonSchema},
    tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};

use super::data::{ContactPatch, Crm, DealPatch, Error, Stage};
use super::pipeline;

/// The demo MCP server. Clones share one CRM, so every session sees every write.
#[derive(Debug, Clone)]
pub struct DemoServer {
    crm: Arc<RwLock<Crm>>,
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new()
    }
}

type ToolResult = Result<CallToolResult, ErrorData>;

/// The result for a value: its JSON, pretty-printed, as text content.
fn json<T: Serialize>(value: &T) -> ToolResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn answer<T: Serialize>(result: Result<T, Error>) -> ToolResult {
    match result {
        Ok(value) => json(&value),
        Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(
            e.to_string(),
        )])),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Query {
    /// Text to look for (case-insensitive substring).
    pub query: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Id {
    /// The record's id, e.g. `deal-1`, `contact-2`, `company-3`.
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListDeals {
    /// Only deals in this stage; all deals when absent.
    pub stage: Option<Stage>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateDeal {
    pub name: String,
    /// The company the deal is with, e.g. `company-1`.
    pub company_id: String,
    /// Whole US dollars.
    pub amount: u64,
    /// Defaults to `lead`.
    pub stage: Option<Stage>,
    /// Expected close date, `YYYY-MM-DD`.
    pub close_date: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateContact {
    pub name: String,
    pub email: String,
    pub title: Option<String>,
    pub company_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateDeal {
    pub id: String,
    pub name: Option<String>,
    pub amount: Option<u64>,
    pub close_date: Option<String>,
    pub contact_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateContact {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddNote {
    /// The id of the deal, contact or company the note is about.
    pub about: String,
    pub text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SignalVisitors {
    /// Only visitors whose intent score (0–100) is at least this; default 0.
    pub min_score: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Question {
    /// e.g. "what is the largest open deal?", "totals by stage", "deals in negotiation".
    pub question: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateStage {
    pub id: String,
    pub stage: Stage,
}

impl DemoServer {
    /// A server over freshly seeded demo data.
    pub fn new() -> Self {
        Self {
            crm: Arc::new(RwLock::new(Crm::seeded())),
        }
    }

    // A panic while holding the lock cannot leave the CRM half-written in a way that matters
    // for a demo, so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Crm> {
        self.crm.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Crm> {
        self.crm.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tool_router]
impl DemoServer {
    #[tool(description = "Search deals by name, company or stage.")]
    pub fn search_deals(&self, Parameters(p): Parameters<Query>) -> ToolResult {
        json(&self.read().search_deals(&p.query))
    }

    #[tool(description = "Search contacts by name, email, title or company.")]
    pub fn search_contacts(&self, Parameters(p): Parameters<Query>) -> ToolResult {
        json(&self.read().search_contacts(&p.query))
    }

    #[tool(description = "Search companies by name, domain or industry.")]
    pub fn search_companies(&self, Parameters(p): Parameters<Query>) -> ToolResult {
        json(&self.read().search_companies(&p.query))
    }

    #[tool(description = "Get one deal, with its notes.")]
    pub fn get_deal(&self, Parameters(p): Parameters<Id>) -> ToolResult {
        let crm = self.read();
        answer(
            crm.deal(&p.id)
                .map(|d| serde_json::json!({ "deal": d, "notes": crm.notes_about(&d.id) })),
        )
    }

    #[tool(description = "Get one contact, with its notes.")]
    pub fn get_contact(&self, Parameters(p): Parameters<Id>) -> ToolResult {
        let crm = self.read();
        answer(
            crm.contact(&p.id)
                .map(|c| serde_json::json!({ "contact": c, "notes": crm.notes_about(&c.id) })),
        )
    }

    #[tool(description = "Get one company, with its contacts and deals.")]
    pub fn get_company(&self, Parameters(p): Parameters<Id>) -> ToolResult {
        let crm = self.read();
        answer(crm.company(&p.id).map(|c| {
            let contacts: Vec<_> = crm
                .contacts
                .iter()
                .filter(|x| x.company_id == c.id)
                .collect();
            let deals: Vec<_> = crm.deals.iter().filter(|x| x.company_id == c.id).collect();
            serde_json::json!({ "company": c, "contacts": contacts, "deals": deals })
        }))
    }

    #[tool(description = "List deals, optionally only those in one stage.")]
    pub fn list_deals(&self, Parameters(p): Parameters<ListDeals>) -> ToolResult {
        json(&self.read().list_deals(p.stage))
    }

    #[tool(description = "Create a deal with a company.")]
    pub fn create_deal(&self, Parameters(p): Parameters<CreateDeal>) -> ToolResult {
        answer(
            self.write()
                .create_deal(p.name, p.company_id, p.amount, p.stage, p.close_date)
                .cloned(),
        )
    }

    #[tool(description = "Create a contact at a company.")]
    pub fn create_contact(&self, Parameters(p): Parameters<CreateContact>) -> ToolResult {
        answer(
            self.write()
                .create_contact(p.name, p.email, p.title, p.company_id)
                .cloned(),
        )
    }

    #[tool(description = "Change a deal's name, amount, close date or contact.")]
    pub fn update_deal(&self, Parameters(p): Parameters<UpdateDeal>) -> ToolResult {
        let patch = DealPatch {
            name: p.name,
            amount: p.amount,
            close_date: p.close_date,
            contact_id: p.contact_id,
        };
        answer(self.write().update_deal(&p.id, patch).cloned())
    }

    #[tool(description = "Change a contact's name, email or title.")]
    pub fn update_contact(&self, Parameters(p): Parameters<UpdateContact>) -> ToolResult {
        let patch = ContactPatch {
            name: p.name,
            email: p.email,
            title: p.title,
        };
        answer(self.write().update_contact(&p.id, patch).cloned())
    }

    #[tool(description = "Add a note to a deal, contact or company.")]
    pub fn add_note(&self, Parameters(p): Parameters<AddNote>) -> ToolResult {
        answer(self.write().add_note(p.about, p.text).cloned())
    }

    #[tool(
        description = "Companies visiting the website recently, with their buying-intent score."
    )]
    pub fn get_signal_visitors(&self, Parameters(p): Parameters<SignalVisitors>) -> ToolResult {
        let crm = self.read();
        let visitors: Vec<_> = crm
            .signal_visitors(p.min_score.unwrap_or(0))
            .into_iter()
            .map(
                |v| serde_json::json!({ "company": crm.company(&v.company_id).ok(), "visitor": v }),
            )
            .collect();
        json(&visitors)
    }

    #[tool(
        description = "Answer a question about the pipeline: totals by stage, the largest open deal, won revenue, one stage's deals."
    )]
    pub fn ask_pipeline(&self, Parameters(p): Parameters<Question>) -> ToolResult {
        json(&pipeline::ask(&self.read(), &p.question))
    }

    #[tool(description = "Move a deal to another stage.")]
    pub fn update_deal_stage(&self, Parameters(p): Parameters<UpdateStage>) -> ToolResult {
        answer(self.write().update_deal_stage(&p.id, p.stage).cloned())
    }
}

#[tool_handler(
    name = "mcpwarden-demo",
    instructions = "A demo CRM: companies, contacts, deals (stages lead → closed_won/closed_lost), notes and website-signal visitors."
)]
impl ServerHandler for DemoServer {}
