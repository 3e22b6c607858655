//! What the gate's end-to-end tests put in the store before slotgate
//! starts: a trusted enterprise in France and people subscribed to it.
#![allow(dead_code)]

use chrono::Utc;
use slotgate::consent::{
    ConsentPolicy, Identifier, NewEnterprise, SubscriptionStatus, TrustStatus, E164,
};
use slotgate::store::Store;

/// Runs `f` on a runtime of its own (the SIPp tests are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Creates an enterprise (default region FR) with `status`.
pub async fn enterprise(store: &Store, name: &str, status: TrustStatus) -> String {
    store
        .create_enterprise(
            &NewEnterprise {
                name: name.into(),
                display_name: name.into(),
                services: vec!["Energy".into()],
                default_region: "FR".into(),
                crm_webhook_url: None,
                crm_webhook_secret: None,
                consent_policy: ConsentPolicy::PerCall,
                status,
            },
            Utc::now(),
        )
        .await
        .expect("enterprise")
        .id
}

/// A person with `number`, subscribed to every enterprise of `enterprises`;
/// the person's id.
pub async fn subscriber(store: &Store, number: &str, enterprises: &[&str]) -> String {
    let now = Utc::now();
    let n = E164::parse(number, None).expect("number");
    let person = store
        .create_person(&[Identifier::Phone(n)], now)
        .await
        .expect("person");
    for e in enterprises {
        store
            .set_subscription(&person.id, e, SubscriptionStatus::Active, now)
            .await
            .expect("subscription");
    }
    person.id
}

/// A migrated store at `url` holding a trusted enterprise with `callee`
/// subscribed and no consent; the enterprise's id.
pub async fn trusted_with_subscriber(url: &str, callee: &str) -> String {
    let store = Store::connect(url).await.expect("open the store");
    store.migrate().await.expect("migrate");
    let e = enterprise(&store, "Paris Energie", TrustStatus::Trusted).await;
    subscriber(&store, callee, &[&e]).await;
    store.close().await;
    e
}
