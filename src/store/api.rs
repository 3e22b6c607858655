//! What the enterprise API stores beside the consent domain.
//!
//! A retried `POST /v1/consent-requests` must find the request its first
//! attempt made, across restarts and nodes, so the Idempotency-Key is kept
//! in the store in the same transaction as the request it names. The
//! request's wording hints (locale, personalisation fields) live there too:
//! the domain's request does not need them, the channels that send the
//! prompt will.

use chrono::{DateTime, Utc};

use super::group_commit::{Creation, Written};
use super::{Engine, Store};
use crate::consent::{Consent, ConsentRequest, NewConsentRequest, E164};
use crate::store::ConsentStoreError;

/// The API's details of one consent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDetails {
    pub idempotency_key: Option<String>,
    /// Digest of the request body as the client sent it, to tell a retry
    /// from a reuse of the key for another request.
    pub body_digest: String,
    pub locale: Option<String>,
    /// A JSON object of string fields.
    pub personalisation: String,
}

/// The outcome of [`Store::create_api_consent_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new request was stored.
    New(ConsentRequest),
    /// The idempotency key had already been used: this is the request made
    /// then, and nothing new was stored.
    Existing(ConsentRequest),
}

impl Created {
    pub fn request(&self) -> &ConsentRequest {
        match self {
            Created::New(r) | Created::Existing(r) => r,
        }
    }
}

impl Store {
    /// Opens a consent request as [`Store::create_consent_request`] does,
    /// with the API's details. With an idempotency key the enterprise has
    /// used before, returns the request made then and stores nothing, even
    /// if the rules would now refuse: the client is retrying, not asking
    /// again.
    pub async fn create_api_consent_request(
        &self,
        new: NewConsentRequest,
        details: RequestDetails,
        now: DateTime<Utc>,
    ) -> Result<Created, ConsentStoreError> {
        // The insert itself detects a reused key (it does nothing), so a
        // first attempt, the common case, pays for no lookup. A refused
        // attempt looks afterwards: a retry of a request the rules have
        // since come to refuse still gets the request it made.
        let enterprise_id = new.enterprise_id.clone();
        let written = match &self.engine {
            // Decided and written with the creations queued at the same
            // time, in one transaction (see `group_commit`); answered as if
            // alone.
            Engine::Sqlite(pool) => {
                let creation = Creation {
                    new,
                    now,
                    details: details.clone(),
                };
                self.creations.insert(pool, creation).await?
            }
            Engine::Postgres(pool) => match self.prepare_consent_request(new, now).await {
                Err(refused) => Written::Refused(refused),
                Ok(request) => {
                    if super::consent_postgres::insert_request(pool, &request, Some(&details))
                        .await?
                    {
                        Written::Stored(Box::new(request))
                    } else {
                        Written::KeyTaken
                    }
                }
            },
        };
        match written {
            Written::Stored(request) => {
                self.wake_webhooks();
                self.wake_prompts();
                Ok(Created::New(*request))
            }
            Written::Refused(refused) => {
                match self
                    .request_by_idempotency_key(&enterprise_id, &details)
                    .await?
                {
                    Some(existing) => Ok(Created::Existing(existing)),
                    None => Err(refused),
                }
            }
            // Another attempt with the same key was stored first: answer
            // with its request.
            Written::KeyTaken => self
                .request_by_idempotency_key(&enterprise_id, &details)
                .await?
                .map(Created::Existing)
                .ok_or_else(|| ConsentStoreError::Invalid {
                    field: "Idempotency-Key",
                    reason: "the key is in use by a request that cannot be read".into(),
                }),
        }
    }

    /// The request made earlier with the same key, if any. The same key
    /// with another body is refused: answering with the first request would
    /// tell the client its new question was recorded when it was not.
    async fn request_by_idempotency_key(
        &self,
        enterprise_id: &str,
        details: &RequestDetails,
    ) -> Result<Option<ConsentRequest>, ConsentStoreError> {
        let Some(key) = details.idempotency_key.as_deref() else {
            return Ok(None);
        };
        let Some(id) = on_engine!(self, request_by_idempotency_key(enterprise_id, key))? else {
            return Ok(None);
        };
        let stored = self.request_details(&id).await?;
        if stored.map(|d| d.body_digest).as_deref() != Some(details.body_digest.as_str()) {
            return Err(ConsentStoreError::Invalid {
                field: "Idempotency-Key",
                reason: "this key was used for a request with another body".into(),
            });
        }
        self.consent_request(&id).await
    }

    /// The API's details of a request, if it was made through the API.
    pub async fn request_details(
        &self,
        request_id: &str,
    ) -> Result<Option<RequestDetails>, ConsentStoreError> {
        on_engine!(self, request_details(request_id))
    }

    /// Every consent (any status) the enterprise holds for the number,
    /// newest first.
    pub async fn consents_for_number(
        &self,
        enterprise_id: &str,
        number: &E164,
    ) -> Result<Vec<Consent>, ConsentStoreError> {
        on_engine!(self, consents_for_number(enterprise_id, number))
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), ConsentStoreError> {
        on_engine!(self, ping())
    }
}
