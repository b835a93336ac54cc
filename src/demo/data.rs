//! The demo's CRM: companies, contacts, deals, notes and website-signal visitors, held in
//! memory, with the queries and writes the demo tools expose.
//!
//! Invariants: ids are unique per kind and never reused (`<kind>-<n>`, counting up); every
//! deal and contact points at a company that exists; amounts are whole US dollars.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a deal stands. `closed_won` and `closed_lost` are closed; the rest are open.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Lead,
    Qualified,
    Proposal,
    Negotiation,
    ClosedWon,
    ClosedLost,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Lead,
        Stage::Qualified,
        Stage::Proposal,
        Stage::Negotiation,
        Stage::ClosedWon,
        Stage::ClosedLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Lead => "lead",
            Stage::Qualified => "qualified",
            Stage::Proposal => "proposal",
            Stage::Negotiation => "negotiation",
            Stage::ClosedWon => "closed_won",
            Stage::ClosedLost => "closed_lost",
        }
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Stage::ClosedWon | Stage::ClosedLost)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Company {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub industry: String,
    pub employees: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub email: String,
    pub title: String,
    pub company_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deal {
    pub id: String,
    pub name: String,
    pub company_id: String,
    pub contact_id: Option<String>,
    pub stage: Stage,
    pub amount: u64,
    pub close_date: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: String,
    /// The id of the deal, contact or company the note is about.
    pub about: String,
    pub text: String,
}

/// A company seen on the website, from the "signal" feature's visitor tracking.
#[derive(Debug, Clone, Serialize)]
pub struct Visitor {
    pub company_id: String,
    pub visits_last_7_days: u32,
    pub pages: Vec<String>,
    /// 0–100: how strongly the visits suggest buying intent.
    pub intent_score: u32,
}

/// Why a read or write could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no {kind} with id `{id}`")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
}

/// Fields of a deal to change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct DealPatch {
    pub name: Option<String>,
    pub amount: Option<u64>,
    pub close_date: Option<String>,
    pub contact_id: Option<String>,
}

/// Fields of a contact to change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ContactPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Crm {
    pub companies: Vec<Company>,
    pub contacts: Vec<Contact>,
    pub deals: Vec<Deal>,
    pub notes: Vec<Note>,
    pub visitors: Vec<Visitor>,
    next_id: u32,
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

impl Crm {
    /// The seeded demo data: four companies, their people, eight deals across every stage.
    #[rustfmt::skip] // one record a line reads as a table
    pub fn seeded() -> Self {
        let company = |id: &str, name: &str, domain: &str, industry: &str, employees| Company {
            id: id.into(),
            name: name.into(),
            domain: domain.into(),
            industry: industry.into(),
            employees,
        };
        let contact = |id: &str, name: &str, email: &str, title: &str, company: &str| Contact {
            id: id.into(),
            name: name.into(),
            email: email.into(),
            title: title.into(),
            company_id: company.into(),
        };
        let deal = |id: &str, name: &str, company: &str, contact: &str, stage, amount, date: &str| {
            Deal {
                id: id.into(),
                name: name.into(),
                company_id: company.into(),
                contact_id: Some(contact.into()),
                stage,
                amount,
                close_date: date.into(),
            }
        };
        let visitor = |company: &str, visits, pages: &[&str], intent_score| Visitor {
            company_id: company.into(),
            visits_last_7_days: visits,
            pages: pages.iter().map(|p| (*p).to_string()).collect(),
            intent_score,
        };
        Self {
            companies: vec![
                company("company-1", "Acme Robotics", "acme-robotics.com", "Manufacturing", 1200),
                company("company-2", "Globex Logistics", "globex.io", "Logistics", 450),
                company("company-3", "Initech Software", "initech.dev", "Software", 80),
                company("company-4", "Umbrella Health", "umbrella-health.org", "Healthcare", 3000),
            ],
            contacts: vec![
                contact("contact-1", "Ada Park", "ada@acme-robotics.com", "VP Operations", "company-1"),
                contact("contact-2", "Ben Ortiz", "ben@acme-robotics.com", "Procurement Lead", "company-1"),
                contact("contact-3", "Chloe Nakamura", "chloe@globex.io", "CTO", "company-2"),
                contact("contact-4", "Dev Raman", "dev@initech.dev", "Founder & CEO", "company-3"),
                contact("contact-5", "Eva Lindqvist", "eva@umbrella-health.org", "Head of IT", "company-4"),
            ],
            deals: vec![
                deal("deal-1", "Acme fleet analytics", "company-1", "contact-1", Stage::Negotiation, 120_000, "2026-10-15"),
                deal("deal-2", "Acme spare-parts portal", "company-1", "contact-2", Stage::Proposal, 45_000, "2026-11-30"),
                deal("deal-3", "Globex route optimisation", "company-2", "contact-3", Stage::Qualified, 80_000, "2026-12-20"),
                deal("deal-4", "Globex driver app", "company-2", "contact-3", Stage::ClosedWon, 32_000, "2026-06-01"),
                deal("deal-5", "Initech starter plan", "company-3", "contact-4", Stage::Lead, 9_000, "2027-01-31"),
                deal("deal-6", "Umbrella records migration", "company-4", "contact-5", Stage::Proposal, 210_000, "2027-02-28"),
                deal("deal-7", "Umbrella pilot", "company-4", "contact-5", Stage::ClosedLost, 15_000, "2026-05-10"),
                deal("deal-8", "Initech support add-on", "company-3", "contact-4", Stage::ClosedWon, 6_500, "2026-07-20"),
            ],
            notes: vec![Note {
                id: "note-1".into(),
                about: "deal-1".into(),
                text: "Ada wants a security review before signing.".into(),
            }],
            visitors: vec![
                visitor("company-4", 14, &["/pricing", "/security", "/case-studies/healthcare"], 87),
                visitor("company-2", 6, &["/pricing", "/docs/api"], 61),
                visitor("company-3", 2, &["/blog/launch"], 18),
            ],
            next_id: 100,
        }
    }

    fn new_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{}", self.next_id)
    }

    fn company_name(&self, id: &str) -> &str {
        self.companies
            .iter()
            .find(|c| c.id == id)
            .map_or("", |c| c.name.as_str())
    }

    /// Deals whose name, company name or stage contains `query` (case-insensitive).
    pub fn search_deals(&self, query: &str) -> Vec<&Deal> {
        self.deals
            .iter()
            .filter(|d| {
                contains(&d.name, query)
                    || contains(self.company_name(&d.company_id), query)
                    || contains(d.stage.as_str(), query)
            })
            .collect()
    }

    /// Contacts whose name, email, title or company name contains `query`.
    pub fn search_contacts(&self, query: &str) -> Vec<&Contact> {
        self.contacts
            .iter()
            .filter(|c| {
                contains(&c.name, query)
                    || contains(&c.email, query)
                    || contains(&c.title, query)
                    || contains(self.company_name(&c.company_id), query)
            })
            .collect()
    }

    /// Companies whose name, domain or industry contains `query`.
    pub fn search_companies(&self, query: &str) -> Vec<&Company> {
        self.companies
            .iter()
            .filter(|c| {
                contains(&c.name, query)
                    || contains(&c.domain, query)
                    || contains(&c.industry, query)
            })
            .collect()
    }

    pub fn deal(&self, id: &str) -> Result<&Deal, Error> {
        self.deals
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| not_found("deal", id))
    }

    pub fn contact(&self, id: &str) -> Result<&Contact, Error> {
        self.contacts
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("contact", id))
    }

    pub fn company(&self, id: &str) -> Result<&Company, Error> {
        self.companies
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("company", id))
    }

    pub fn notes_about(&self, id: &str) -> Vec<&Note> {
        self.notes.iter().filter(|n| n.about == id).collect()
    }

    /// Deals in `stage`, or every deal when `stage` is `None`.
    pub fn list_deals(&self, stage: Option<Stage>) -> Vec<&Deal> {
        self.deals
            .iter()
            .filter(|d| stage.is_none_or(|s| d.stage == s))
            .collect()
    }

    pub fn create_deal(
        &mut self,
        name: String,
        company_id: String,
        amount: u64,
        stage: Option<Stage>,
        close_date: Option<String>,
    ) -> Result<&Deal, Error> {
        self.company(&company_id)?;
        let id = self.new_id("deal");
        self.deals.push(Deal {
            id,
            name,
            company_id,
            contact_id: None,
            stage: stage.unwrap_or(Stage::Lead),
            amount,
            close_date: close_date.unwrap_or_default(),
        });
        Ok(self.deals.last().expect("just pushed"))
    }

    pub fn create_contact(
        &mut self,
        name: String,
        email: String,
        title: Option<String>,
        company_id: String,
    ) -> Result<&Contact, Error> {
        self.company(&company_id)?;
        if !email.contains('@') {
            return Err(Error::Invalid(format!("`{email}` is not an email address")));
        }
        let id = self.new_id("contact");
        self.contacts.push(Contact {
            id,
            name,
            email,
            title: title.unwrap_or_default(),
            company_id,
        });
        Ok(self.contacts.last().expect("just pushed"))
    }

    pub fn update_deal(&mut self, id: &str, patch: DealPatch) -> Result<&Deal, Error> {
        if let Some(contact) = &patch.contact_id {
            self.contact(contact)?;
        }
        let deal = self
            .deals
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(|| not_found("deal", id))?;
        if let Some(name) = patch.name {
            deal.name = name;
        }
        if let Some(amount) = patch.amount {
            deal.amount = amount;
        }
        if let Some(date) = patch.close_date {
            deal.close_date = date;
        }
        if patch.contact_id.is_some() {
            deal.contact_id = patch.contact_id;
        }
        Ok(deal)
    }

    pub fn update_deal_stage(&mut self, id: &str, stage: Stage) -> Result<&Deal, Error> {
        let deal = self
            .deals
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(|| not_found("deal", id))?;
        deal.stage = stage;
        Ok(deal)
    }

    pub fn update_contact(&mut self, id: &str, patch: ContactPatch) -> Result<&Contact, Error> {
        let contact = self
            .contacts
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("contact", id))?;
        if let Some(name) = patch.name {
            contact.name = name;
        }
        if let Some(email) = patch.email {
            contact.email = email;
        }
        if let Some(title) = patch.title {
            contact.title = title;
        }
        Ok(contact)
    }

    pub fn add_note(&mut self, about: String, text: String) -> Result<&Note, Error> {
        let exists = self.deals.iter().any(|d| d.id == about)
            || self.contacts.iter().any(|c| c.id == about)
            || self.companies.iter().any(|c| c.id == about);
        if !exists {
            return Err(not_found("deal, contact or company", &about));
        }
        let id = self.new_id("note");
        self.notes.push(Note { id, about, text });
        Ok(self.notes.last().expect("just pushed"))
    }

    /// Visitors with an intent score of at least `min_score`, strongest first.
    pub fn signal_visitors(&self, min_score: u32) -> Vec<&Visitor> {
        let mut out: Vec<&Visitor> = self
            .visitors
            .iter()
            .filter(|v| v.intent_score >= min_score)
            .collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.intent_score));
        out
    }

    /// Count and total amount of the deals in each stage, in pipeline order.
    pub fn totals_by_stage(&self) -> BTreeMap<Stage, (usize, u64)> {
        let mut totals: BTreeMap<Stage, (usize, u64)> =
            Stage::ALL.iter().map(|s| (*s, (0, 0))).collect();
        for deal in &self.deals {
            let entry = totals.entry(deal.stage).or_default();
            entry.0 += 1;
            entry.1 += deal.amount;
        }
        totals
    }

    /// The open deal with the largest amount.
    pub fn largest_open_deal(&self) -> Option<&Deal> {
        self.deals
            .iter()
            .filter(|d| d.stage.is_open())
            .max_by_key(|d| d.amount)
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::NotFound {
        kind,
        id: id.to_string(),
    }
}
