//! Settings (`/settings`): the account's contact email and notification preferences,
//! and a link to the proxy's change-password page (passwords live in the proxy's
//! directory, never in the panel). An invalid email re-renders the form with what was
//! typed, the reason, and status 422.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{see_other, FlashQuery, PageError};
use crate::assertion::Identity;
use crate::binding;
use crate::layout::{page, Area, Flash, PASSWORD_PATH};
use crate::names::email_address;
use crate::provision::DEFAULT_DOMAIN_SUFFIX;
use crate::store::{Account, ActivityEntry, ActivityKind, Settings};
use crate::PanelState;

/// The settings form. An unchecked checkbox is simply absent.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    contact_email: String,
    notify_billing: Option<String>,
    notify_security: Option<String>,
    notify_newsletter: Option<String>,
}

/// `GET /settings`
pub async fn show(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Query(flash): Query<FlashQuery>,
) -> Result<Markup, PageError> {
    let settings = match panel.store.settings(account.id).await? {
        Some(settings) => settings,
        None => Settings {
            contact_email: format!("{}@{DEFAULT_DOMAIN_SUFFIX}", account.username),
            notify_billing: true,
            notify_security: true,
            notify_newsletter: true,
        },
    };
    Ok(render(&identity, flash.flash(&identity), &settings))
}

/// `POST /settings`
pub async fn save(
    State(panel): State<PanelState>,
    identity: Identity,
    account: Account,
    Form(form): Form<SettingsForm>,
) -> Result<Response, PageError> {
    let mut settings = Settings {
        contact_email: form.contact_email.clone(),
        notify_billing: form.notify_billing.is_some(),
        notify_security: form.notify_security.is_some(),
        notify_newsletter: form.notify_newsletter.is_some(),
    };
    settings.contact_email = match email_address(&form.contact_email) {
        Ok(address) => address,
        Err(error) => {
            let reason = error.to_string();
            let markup = render(&identity, Some(Flash::Error(&reason)), &settings);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, markup).into_response());
        }
    };
    let summary = format!(
        "Changed settings: contact email {}, notifications {}",
        settings.contact_email,
        describe_notifications(&settings)
    );
    let entry = ActivityEntry::new(&identity, ActivityKind::SettingsChanged, summary);
    panel
        .store
        .save_settings(account.id, &settings, &entry)
        .await?;
    Ok(see_other(&identity, "/settings", "Settings saved."))
}

fn describe_notifications(settings: &Settings) -> String {
    let chosen: Vec<&str> = [
        (settings.notify_billing, "billing"),
        (settings.notify_security, "security"),
        (settings.notify_newsletter, "newsletter"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if chosen.is_empty() {
        "off".to_owned()
    } else {
        chosen.join(", ")
    }
}

fn render(identity: &Identity, flash: Option<Flash<'_>>, settings: &Settings) -> Markup {
    page(
        identity,
        Area::Settings,
        "Settings",
        flash,
        html! {
            div.card {
                form.stack method="post" action=(binding::action(identity, "/settings")) {
                    label for="contact-email" { "Contact email" }
                    input #contact-email type="email" name="contact_email" value=(settings.contact_email)
                        required autocomplete="email";
                    p.muted { "Where we send invoices, security alerts and news about your account." }
                    fieldset.checks {
                        legend { "Email me about" }
                        label {
                            input type="checkbox" name="notify_billing" value="on" checked[settings.notify_billing];
                            "Billing: invoices and payment reminders"
                        }
                        label {
                            input type="checkbox" name="notify_security" value="on" checked[settings.notify_security];
                            "Security: sign-ins, password changes and advisories"
                        }
                        label {
                            input type="checkbox" name="notify_newsletter" value="on" checked[settings.notify_newsletter];
                            "Newsletter: product news, at most once a month"
                        }
                    }
                    div { button type="submit" { "Save settings" } }
                }
            }
            h2 { "Password" }
            div.card {
                p { "Your password is managed by the sign-in service." }
                p { a.button.secondary href=(PASSWORD_PATH) { "Change password" } }
            }
        },
    )
}
