//! Persistence of the consent domain (`crate::consent`) on both engines.
//!
//! The operations here keep the domain's rules that need data: an
//! identifier names one person, a revocation adds the do-not-call entry in
//! the same transaction, a consent request is written only by whoever read
//! its latest version, a CSV import lands whole or not at all. The SQL is
//! written once (see `consent_queries`) and compiled for each engine, so
//! the two cannot drift apart.

use chrono::{DateTime, Utc};

use super::{Engine, Store, StoreError};
use crate::consent::enterprise::{generate_api_key, split_api_key, verify_secret, KeyHashError};
use crate::consent::person::IdentifierError;
use crate::consent::{
    dnc, new_id, ApiKey, Consent, ConsentRequest, DncEntry, DncImportReport, Enterprise,
    EnterpriseChanges, Identifier, IssuedApiKey, NewConsent, NewConsentRequest, NewEnterprise,
    NumberError, Person, Refusal, Region, RequestEvent, Subscription, SubscriptionStatus,
    Transition, TransitionError, TrustStatus, E164,
};

/// Why a consent-domain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsentStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The named row does not exist.
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    /// Someone else wrote the row since it was read; reload and decide again.
    #[error(
        "{what} {id:?} was changed concurrently (expected version {expected}); reload it and retry"
    )]
    Conflict {
        what: &'static str,
        id: String,
        expected: i64,
    },
    /// The identifier already names another person.
    #[error("{identifier} already belongs to person {person_id}")]
    IdentifierTaken {
        identifier: String,
        person_id: String,
    },
    /// The rules forbid contacting this person for this enterprise.
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Number(#[from] NumberError),
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    #[error(transparent)]
    KeyHash(#[from] KeyHashError),
    /// An input field is unusable; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The row cannot be removed while other records depend on it.
    #[error("{what} {id:?} cannot be deleted: {reason}")]
    InUse {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// A scheduling step was refused: the callback is not claimed by the
    /// node with a live lease, another attempt is dialling, or the attempt
    /// has already ended.
    #[error("{what} {id:?}: {reason}")]
    NotClaimed {
        what: &'static str,
        id: String,
        reason: String,
    },
}

impl ConsentStoreError {
    /// The refusal, when the operation was refused by the consent rules.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ConsentStoreError::Refused(r) => Some(r),
            _ => None,
        }
    }
}

impl Store {
    /// Registers an enterprise. Its default region must be one the number
    /// metadata knows, and a service name must fit on one line.
    pub async fn create_enterprise(
        &self,
        new: &NewEnterprise,
        now: DateTime<Utc>,
    ) -> Result<Enterprise, ConsentStoreError> {
        let now = super::to_micros(now);
        let enterprise = checked_enterprise(new_id(), new, now, now)?;
        on_engine!(self, insert_enterprise(&enterprise))?;
        Ok(enterprise)
    }

    /// Every enterprise, oldest first.
    pub async fn enterprises(&self) -> Result<Vec<Enterprise>, ConsentStoreError> {
        on_engine!(self, enterprises())
    }

    /// Changes an enterprise's settings, checked by the rules a creation
    /// is. Two administrators editing at once cannot silently overwrite
    /// each other: the write only lands on the version that was read.
    pub async fn update_enterprise(
        &self,
        id: &str,
        changes: &EnterpriseChanges,
        now: DateTime<Utc>,
    ) -> Result<Enterprise, ConsentStoreError> {
        let current = self
            .enterprise(id)
            .await?
            .ok_or_else(|| not_found("enterprise", id))?;
        let updated = checked_enterprise(
            current.id.clone(),
            &changes.applied_to(&current),
            current.created_at,
            super::to_micros(now).max(current.updated_at + chrono::TimeDelta::microseconds(1)),
        )?;
        if !on_engine!(self, replace_enterprise(&updated, current.updated_at))? {
            return Err(ConsentStoreError::Conflict {
                what: "enterprise",
                id: id.to_string(),
                expected: current.updated_at.timestamp_micros(),
            });
        }
        Ok(updated)
    }

    /// Removes an enterprise that never asked anyone anything, with its API
    /// keys, do-not-call entries and idempotency records. One that has
    /// subscribers, consents or consent requests is refused: that history is
    /// evidence, so such an enterprise is suspended instead.
    pub async fn delete_enterprise(&self, id: &str) -> Result<(), ConsentStoreError> {
        match on_engine!(self, delete_enterprise(id))? {
            EnterpriseDeletion::Deleted => Ok(()),
            EnterpriseDeletion::Missing => Err(not_found("enterprise", id)),
            EnterpriseDeletion::HasHistory => Err(ConsentStoreError::InUse {
                what: "enterprise",
                id: id.to_string(),
                reason: "it has subscriptions, consents or consent requests; \
                         suspend it instead"
                    .to_string(),
            }),
        }
    }

    pub async fn enterprise(&self, id: &str) -> Result<Option<Enterprise>, ConsentStoreError> {
        on_engine!(self, enterprise(id))
    }

    /// Trusts, suspends or distrusts an enterprise; takes effect for the
    /// next question it asks.
    pub async fn set_enterprise_status(
        &self,
        id: &str,
        status: TrustStatus,
        now: DateTime<Utc>,
    ) -> Result<Enterprise, ConsentStoreError> {
        if !on_engine!(self, set_enterprise_status(id, status, now))? {
            return Err(not_found("enterprise", id));
        }
        self.enterprise(id)
            .await?
            .ok_or_else(|| not_found("enterprise", id))
    }

    /// Creates an API key for the enterprise. The returned key is the only
    /// copy: the store keeps its argon2 hash.
    pub async fn create_api_key(
        &self,
        enterprise_id: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedApiKey, ConsentStoreError> {
        if self.enterprise(enterprise_id).await?.is_none() {
            return Err(not_found("enterprise", enterprise_id));
        }
        // Hashing is as slow as verifying: keep it off the async threads.
        let (issued, hash) = tokio::task::spawn_blocking(generate_api_key)
            .await
            .map_err(|e| KeyHashError(e.to_string()))??;
        let key = ApiKey {
            id: issued.id.clone(),
            enterprise_id: enterprise_id.to_string(),
            hash,
            created_at: super::to_micros(now),
            revoked_at: None,
        };
        on_engine!(self, insert_api_key(&key))?;
        Ok(issued)
    }

    /// The enterprise a presented key belongs to, or `None` if the key is
    /// malformed, unknown, revoked or wrong. Callers still check the
    /// enterprise's status: a suspended enterprise's key is valid but may
    /// ask nothing. A key that verified in the last minute is not hashed
    /// again (see `key_cache`); its row is still read, so revocation is
    /// immediate.
    pub async fn verify_api_key(
        &self,
        presented: &str,
    ) -> Result<Option<Enterprise>, ConsentStoreError> {
        let Some((id, secret)) = split_api_key(presented) else {
            return Ok(None);
        };
        let Some((hash, revoked, enterprise)) = on_engine!(self, api_key_holder(id))? else {
            return Ok(None);
        };
        // Read from the row on every request, cached or not: revocation
        // takes effect at once on every node.
        if revoked {
            return Ok(None);
        }
        let now = std::time::Instant::now();
        if !self.verified_keys.contains(id, secret, &hash, now) {
            // argon2 is deliberately slow (tens of milliseconds); off the
            // async threads it cannot stall the SIP loop that shares the
            // runtime.
            let (owned, stored) = (secret.to_string(), hash.clone());
            let matches = tokio::task::spawn_blocking(move || verify_secret(&owned, &stored))
                .await
                .unwrap_or(false);
            if !matches {
                return Ok(None);
            }
            self.verified_keys.insert(id, secret, &hash, now);
        }
        Ok(Some(enterprise))
    }

    /// Revokes a key at once. Revoking a revoked key keeps the first
    /// revocation time.
    pub async fn revoke_api_key(
        &self,
        key_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ConsentStoreError> {
        if on_engine!(self, api_key(key_id))?.is_none() {
            return Err(not_found("API key", key_id));
        }
        // Not needed for correctness (every request reads `revoked_at`),
        // but a revoked key has no business staying in memory.
        self.verified_keys.forget(key_id);
        on_engine!(self, revoke_api_key(key_id, now))
    }

    /// The enterprise's keys (hashes only), oldest first.
    pub async fn api_keys(&self, enterprise_id: &str) -> Result<Vec<ApiKey>, ConsentStoreError> {
        on_engine!(self, api_keys(enterprise_id))
    }

    /// Creates a person with the given identifiers, all or none: if one of
    /// them already names someone, nothing is created.
    pub async fn create_person(
        &self,
        identifiers: &[Identifier],
        now: DateTime<Utc>,
    ) -> Result<Person, ConsentStoreError> {
        let mut unique: Vec<Identifier> = Vec::with_capacity(identifiers.len());
        for i in identifiers {
            if !unique.contains(i) {
                unique.push(i.clone());
            }
        }
        let person = Person {
            id: new_id(),
            identifiers: unique,
            created_at: super::to_micros(now),
        };
        on_engine!(self, insert_person(&person))?;
        Ok(person)
    }

    /// Adds an identifier to a person; adding one the person already has
    /// changes nothing.
    pub async fn add_identifier(
        &self,
        person_id: &str,
        identifier: &Identifier,
    ) -> Result<Person, ConsentStoreError> {
        on_engine!(self, add_identifier(person_id, identifier))?;
        self.person(person_id)
            .await?
            .ok_or_else(|| not_found("person", person_id))
    }

    pub async fn person(&self, id: &str) -> Result<Option<Person>, ConsentStoreError> {
        on_engine!(self, person(id))
    }

    /// The id of the person an identifier names: one lookup, where
    /// [`person_by_identifier`](Store::person_by_identifier) also reads the
    /// person.
    pub async fn person_id_by_identifier(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<String>, ConsentStoreError> {
        on_engine!(self, person_id_by_identifier(identifier))
    }

    /// The person an identifier (of any kind) names.
    pub async fn person_by_identifier(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<Person>, ConsentStoreError> {
        match on_engine!(self, person_id_by_identifier(identifier))? {
            Some(id) => self.person(&id).await,
            None => Ok(None),
        }
    }

    /// Sets the subscription between a person and an enterprise, creating
    /// it if needed. Becoming active restarts `since` and clears `until`;
    /// ending sets `until` to `now`; pausing keeps both.
    pub async fn set_subscription(
        &self,
        person_id: &str,
        enterprise_id: &str,
        status: SubscriptionStatus,
        now: DateTime<Utc>,
    ) -> Result<Subscription, ConsentStoreError> {
        on_engine!(
            self,
            set_subscription(person_id, enterprise_id, status, super::to_micros(now))
        )
    }

    pub async fn subscription(
        &self,
        person_id: &str,
        enterprise_id: &str,
    ) -> Result<Option<Subscription>, ConsentStoreError> {
        on_engine!(self, subscription(person_id, enterprise_id))
    }

    /// Whether the enterprise may send anything to `number` at `now`: the
    /// enterprise is trusted, the number belongs to a person with an active
    /// subscription to it, and the number is on no do-not-call list. Gives
    /// the person on success and [`ConsentStoreError::Refused`] otherwise.
    pub async fn check_can_ask(
        &self,
        enterprise_id: &str,
        number: &E164,
        now: DateTime<Utc>,
    ) -> Result<Person, ConsentStoreError> {
        let person_id = self.check_can_ask_id(enterprise_id, number, now).await?;
        self.person(&person_id)
            .await?
            .ok_or(ConsentStoreError::Refused(Refusal::NotSubscribed))
    }

    /// [`check_can_ask`](Store::check_can_ask) giving only the person's id:
    /// creating a request needs no more, and reading the whole person is
    /// two more queries on every API request.
    async fn check_can_ask_id(
        &self,
        enterprise_id: &str,
        number: &E164,
        now: DateTime<Utc>,
    ) -> Result<String, ConsentStoreError> {
        let facts = on_engine!(self, ask_facts(enterprise_id, number))?;
        allowed_person(facts, enterprise_id, now)
    }

    /// Puts a number on the enterprise's list (`Some`) or the global one
    /// (`None`). Returns whether it was added (false: already listed).
    pub async fn add_do_not_call(
        &self,
        enterprise_id: Option<&str>,
        number: &E164,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ConsentStoreError> {
        on_engine!(
            self,
            add_do_not_call(enterprise_id.unwrap_or(""), number, source, now)
        )
    }

    /// The entry that bars `number` for the enterprise (`Some`) or globally;
    /// a global entry is reported first.
    /// Takes `number` off one list (the global one for `None`); the other
    /// list keeps its entry. False when it was not on that list.
    pub async fn remove_do_not_call(
        &self,
        enterprise_id: Option<&str>,
        number: &E164,
    ) -> Result<bool, ConsentStoreError> {
        on_engine!(
            self,
            remove_do_not_call(enterprise_id.unwrap_or(""), number)
        )
    }

    pub async fn do_not_call(
        &self,
        enterprise_id: Option<&str>,
        number: &E164,
    ) -> Result<Option<DncEntry>, ConsentStoreError> {
        on_engine!(self, do_not_call(enterprise_id.unwrap_or(""), number))
    }

    /// Imports a do-not-call CSV (see [`dnc::parse_csv`]) into the
    /// enterprise's list, or the global list with `None`; national numbers
    /// are read in the enterprise's default region (global imports need
    /// international numbers). All accepted rows land in one transaction.
    pub async fn import_do_not_call(
        &self,
        enterprise_id: Option<&str>,
        csv: &str,
        now: DateTime<Utc>,
    ) -> Result<DncImportReport, ConsentStoreError> {
        let region = match enterprise_id {
            Some(id) => {
                let enterprise = self
                    .enterprise(id)
                    .await?
                    .ok_or_else(|| not_found("enterprise", id))?;
                Some(enterprise.default_region.parse::<Region>()?)
            }
            None => None,
        };
        let parsed = dnc::parse_csv(csv, region);
        on_engine!(
            self,
            import_do_not_call(enterprise_id.unwrap_or(""), parsed, now)
        )
    }

    /// Records a granted or declined consent with its evidence, and queues
    /// its `consent.granted`/`consent.declined` webhook event in the same
    /// transaction.
    pub async fn record_consent(
        &self,
        new: &NewConsent,
        now: DateTime<Utc>,
    ) -> Result<Consent, ConsentStoreError> {
        use crate::consent::ConsentStatus;
        if !matches!(new.status, ConsentStatus::Granted | ConsentStatus::Declined) {
            return Err(invalid(
                "status",
                "a new consent is granted or declined; revoke or expire existing ones",
            ));
        }
        // A consent given on one person's number must not be filed under
        // another person: lookups by number would then disagree.
        let owner = self
            .person_by_identifier(&Identifier::Phone(new.number.clone()))
            .await?;
        if owner.as_ref().map(|p| p.id.as_str()) != Some(new.person_id.as_str()) {
            return Err(invalid(
                "number",
                format!("{} is not a number of person {}", new.number, new.person_id),
            ));
        }
        let now = super::to_micros(now);
        let consent = Consent {
            id: new_id(),
            person_id: new.person_id.clone(),
            enterprise_id: new.enterprise_id.clone(),
            number: new.number.clone(),
            scope: new.scope.clone(),
            status: new.status,
            window: new.window.clone().map(|mut w| {
                w.start = super::to_micros(w.start);
                w.end = super::to_micros(w.end);
                w
            }),
            expires_at: new.expires_at.map(super::to_micros),
            channel: new.channel,
            evidence: {
                let mut e = new.evidence.clone();
                e.replied_at = e.replied_at.map(super::to_micros);
                e.received_at = e.received_at.map(super::to_micros);
                e
            },
            created_at: now,
            updated_at: now,
            revoked_at: None,
        };
        on_engine!(self, insert_consent(&consent))?;
        self.wake_webhooks();
        Ok(consent)
    }

    pub async fn consent(&self, id: &str) -> Result<Option<Consent>, ConsentStoreError> {
        on_engine!(self, consent(id))
    }

    /// Revokes a consent at once and, in the same transaction, puts its
    /// number on the enterprise's do-not-call list and queues the
    /// `consent.revoked` webhook event. Revoking twice keeps the first
    /// revocation (and its one event).
    pub async fn revoke_consent(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Consent, ConsentStoreError> {
        if !on_engine!(self, revoke_consent(id, super::to_micros(now)))? {
            return Err(not_found("consent", id));
        }
        self.wake_webhooks();
        self.consent(id)
            .await?
            .ok_or_else(|| not_found("consent", id))
    }

    /// The consent that allows the enterprise to call `number` at `t`:
    /// granted, not expired at `t`, and with `t` inside its window if it has
    /// one. Revoked, declined and expired consents are never returned, even
    /// if the periodic expiry has not marked them yet. When several cover
    /// `t`, the most recent wins.
    pub async fn consent_covering(
        &self,
        enterprise_id: &str,
        number: &E164,
        t: DateTime<Utc>,
    ) -> Result<Option<Consent>, ConsentStoreError> {
        on_engine!(self, consent_covering(enterprise_id, number, t))
    }

    /// Marks granted consents whose `expires_at` has passed as expired and
    /// queues a `consent.expired` webhook event for each, in one
    /// transaction; returns how many. Queries do not depend on it (they
    /// check the time themselves); it keeps statuses truthful for reports
    /// and webhooks.
    pub async fn expire_consents(&self, now: DateTime<Utc>) -> Result<u64, ConsentStoreError> {
        let expired = on_engine!(self, expire_consents(super::to_micros(now)))?;
        if expired > 0 {
            self.wake_webhooks();
        }
        Ok(expired)
    }

    /// Checks and builds a new request (version 1) without storing it.
    pub(crate) async fn prepare_consent_request(
        &self,
        new: NewConsentRequest,
        now: DateTime<Utc>,
    ) -> Result<ConsentRequest, ConsentStoreError> {
        let facts = on_engine!(self, ask_facts(&new.enterprise_id, &new.number))?;
        request_from_facts(facts, new, now)
    }

    /// Opens a consent request after [`check_can_ask`](Store::check_can_ask)
    /// allows it, in state `created`, at version 1, with its
    /// `consent_request.created` webhook event.
    pub async fn create_consent_request(
        &self,
        new: NewConsentRequest,
        now: DateTime<Utc>,
    ) -> Result<ConsentRequest, ConsentStoreError> {
        let request = self.prepare_consent_request(new, now).await?;
        on_engine!(self, insert_request(&request, None))?;
        self.wake_webhooks();
        self.wake_prompts();
        Ok(request)
    }

    pub async fn consent_request(
        &self,
        id: &str,
    ) -> Result<Option<ConsentRequest>, ConsentStoreError> {
        on_engine!(self, consent_request(id))
    }

    /// Writes a request's new state if the stored row is still at
    /// `request.version`; returns it at the next version. A stale version
    /// is [`ConsentStoreError::Conflict`]: another node got there first.
    /// The `consent_request.<state>` webhook event is queued with the write.
    pub async fn save_consent_request(
        &self,
        request: &ConsentRequest,
    ) -> Result<ConsentRequest, ConsentStoreError> {
        let mut saved = request.clone();
        saved.updated_at = super::to_micros(saved.updated_at);
        if let crate::consent::RequestState::Answered(answer) = &mut saved.state {
            match answer {
                crate::consent::Answer::Slot(s) => {
                    s.start = super::to_micros(s.start);
                    s.end = super::to_micros(s.end);
                }
                crate::consent::Answer::Range { start, end } => {
                    *start = super::to_micros(*start);
                    *end = super::to_micros(*end);
                }
                crate::consent::Answer::Now | crate::consent::Answer::Decline => {}
            }
        }
        if !on_engine!(self, update_request(&saved))? {
            return Err(match self.consent_request(&request.id).await? {
                Some(_) => ConsentStoreError::Conflict {
                    what: "consent request",
                    id: request.id.clone(),
                    expected: request.version,
                },
                None => not_found("consent request", &request.id),
            });
        }
        saved.version += 1;
        self.wake_webhooks();
        Ok(saved)
    }

    /// Reads a request, applies `event` at `now` and saves the result:
    /// the whole of a transition. A repeated event writes nothing; an
    /// illegal one is refused; a concurrent writer makes it fail with
    /// [`ConsentStoreError::Conflict`] rather than overwrite.
    pub async fn apply_consent_request_event(
        &self,
        id: &str,
        event: RequestEvent,
        now: DateTime<Utc>,
    ) -> Result<(ConsentRequest, Transition), ConsentStoreError> {
        let mut request = self
            .consent_request(id)
            .await?
            .ok_or_else(|| not_found("consent request", id))?;
        match request.apply(event, now)? {
            Transition::Unchanged => Ok((request, Transition::Unchanged)),
            Transition::Applied => Ok((
                self.save_consent_request(&request).await?,
                Transition::Applied,
            )),
        }
    }
}

/// What decides whether an enterprise may ask a number, read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AskFacts {
    pub trust: TrustStatus,
    /// The list the number is on, if any: `Some(None)` is the global list.
    pub do_not_call: Option<Option<String>>,
    pub person_id: Option<String>,
    pub subscription: Option<Subscription>,
    /// The number the person is called from for this enterprise, if set
    /// (read here so the gate learns it without another statement).
    pub caller_id_override: Option<E164>,
}

impl AskFacts {
    /// The person's id when everything allows asking; the first rule that
    /// forbids it otherwise, in the order the refusals are documented.
    fn may_ask(self, now: DateTime<Utc>) -> Result<String, Refusal> {
        self.trust.ensure_may_ask()?;
        match self.do_not_call {
            Some(Some(_)) => return Err(Refusal::DoNotCallEnterprise),
            Some(None) => return Err(Refusal::DoNotCallGlobal),
            None => {}
        }
        let person_id = self.person_id.ok_or(Refusal::NotSubscribed)?;
        self.subscription
            .ok_or(Refusal::NotSubscribed)?
            .ensure_active(now)?;
        Ok(person_id)
    }
}

/// The person `facts` (read for an enterprise, `None` when it does not
/// exist) allow the enterprise to ask at `now`.
fn allowed_person(
    facts: Option<AskFacts>,
    enterprise_id: &str,
    now: DateTime<Utc>,
) -> Result<String, ConsentStoreError> {
    facts
        .ok_or_else(|| not_found("enterprise", enterprise_id))?
        .may_ask(now)
        .map_err(ConsentStoreError::Refused)
}

/// The request `new` opens at `now`, if `facts` (read for its enterprise
/// and number) allow asking and the request itself is sound. No I/O, so
/// that a batch of creations can be decided inside the transaction that
/// stores them (see `group_commit`).
pub(crate) fn request_from_facts(
    facts: Option<AskFacts>,
    new: NewConsentRequest,
    now: DateTime<Utc>,
) -> Result<ConsentRequest, ConsentStoreError> {
    let person_id = allowed_person(facts, &new.enterprise_id, now)?;
    if person_id != new.person_id {
        return Err(invalid(
            "person_id",
            format!("{} belongs to person {person_id}", new.number),
        ));
    }
    if let Some(bad) = new.options.iter().find(|o| o.end <= o.start) {
        return Err(invalid(
            "options",
            format!("the slot {}..{} ends before it starts", bad.start, bad.end),
        ));
    }
    let mut request = ConsentRequest::new(new_id(), new, super::to_micros(now));
    request.expires_at = super::to_micros(request.expires_at);
    for o in &mut request.options {
        o.start = super::to_micros(o.start);
        o.end = super::to_micros(o.end);
    }
    request.version = 1;
    Ok(request)
}

/// What [`Store::delete_enterprise`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnterpriseDeletion {
    Deleted,
    Missing,
    HasHistory,
}

/// The enterprise `fields` describe, if they pass the registration rules.
fn checked_enterprise(
    id: String,
    fields: &NewEnterprise,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> Result<Enterprise, ConsentStoreError> {
    let region: Region = fields.default_region.parse()?;
    if fields.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if fields.display_name.trim().is_empty() {
        return Err(invalid("display_name", "must not be empty"));
    }
    if fields.services.iter().any(|s| s.contains(['\n', '\r'])) {
        return Err(invalid("services", "a service name must fit on one line"));
    }
    if let Some(url) = &fields.crm_webhook_url {
        if Identifier::url(url).is_err() {
            return Err(invalid(
                "crm_webhook_url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        // An unsigned event cannot be told from a forged one.
        if fields
            .crm_webhook_secret
            .as_deref()
            .is_none_or(|s| s.trim().len() < 16)
        {
            return Err(invalid(
                "crm_webhook_secret",
                "a webhook URL needs a signing secret of at least 16 characters",
            ));
        }
    }
    Ok(Enterprise {
        id,
        name: fields.name.trim().to_string(),
        display_name: fields.display_name.trim().to_string(),
        services: fields.services.clone(),
        default_region: region.to_string(),
        crm_webhook_url: fields.crm_webhook_url.clone(),
        crm_webhook_secret: fields.crm_webhook_secret.clone(),
        consent_policy: fields.consent_policy,
        status: fields.status,
        created_at,
        updated_at,
    })
}

fn not_found(what: &'static str, id: &str) -> ConsentStoreError {
    ConsentStoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConsentStoreError {
    ConsentStoreError::Invalid {
        field,
        reason: reason.into(),
    }
}
