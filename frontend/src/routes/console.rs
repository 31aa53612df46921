//! The operator console: signed in with the bank's operator key (kept in this page's memory
//! only, never stored), it shows what the bank knows of the network, asked once a second of
//! `GET /api/operator/overview` — the ring drawn as a circle of banks with the token's holder
//! and epoch, each bank's health, the settlement queue, what is in doubt, packages settled per
//! second as a small chart, and the net positions this bank has with the others.

// Drawing and rates for the operator's eyes: no amount of money is computed in this module.
#![expect(clippy::float_arithmetic, reason = "chart coordinates and rates, never money")]

use std::collections::VecDeque;
use std::time::Duration;

use leptos::prelude::*;
use shared::api::{Overview, RingMember};

use crate::api::{Api, local_banks};
use crate::app::ctx;
use crate::i18n::t;

/// `v` to one decimal ("12.3"), written with integers: Rust's float formatting would add more
/// to the wasm than the whole console.
fn tenths(v: f64) -> String {
    #[expect(clippy::cast_possible_truncation, reason = "chart coordinates and rates, far inside i64")]
    let t = (v * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    format!("{sign}{}.{}", (t / 10).abs(), (t % 10).abs())
}

/// Between two looks at the overview.
const CONSOLE_REFRESH_MS: u64 = 1_000;
/// Samples the settled-per-second chart keeps (one a refresh).
const RATE_SAMPLES_MAX: usize = 60;

#[component]
pub fn Console(on_close: Callback<()>) -> impl IntoView {
    let c = ctx();
    let base = RwSignal::new(
        c.bank
            .get_untracked()
            .map(|b| b.base)
            .unwrap_or_else(|| local_banks().first().map(|b| b.base.clone()).unwrap_or_default()),
    );
    let key = RwSignal::new(String::new());
    let signed_in = RwSignal::new(None::<Api>);
    view! {
        <section class="console">
            <div class="row buttons">
                <h2>{c.t("console")}</h2>
                <button type="button" class="link" id="console-close" on:click=move |_| on_close.run(())>{c.t("back")}</button>
            </div>
            {move || match signed_in.get() {
                None => view! {
                    <form id="console-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                        ev.prevent_default();
                        let api = Api {
                            base: base.get().trim().trim_end_matches('/').to_string(),
                            token: Some(key.get().trim().to_string()),
                            lang: c.lang.get_untracked(),
                        };
                        key.set(String::new());
                        signed_in.set(Some(api));
                    }>
                        <label for="console-base">{c.t("replica_address")}</label>
                        <input id="console-base" prop:value=move || base.get() on:input=move |ev| base.set(event_target_value(&ev)) />
                        <label for="console-key">{c.t("operator_key")}</label>
                        <input id="console-key" type="password" autocomplete="off" prop:value=move || key.get()
                            on:input=move |ev| key.set(event_target_value(&ev)) />
                        <button id="console-enter" type="submit">{c.t("log_in")}</button>
                    </form>
                }.into_any(),
                Some(api) => view! { <Live api=api /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn Live(api: Api) -> impl IntoView {
    let c = ctx();
    let overview = RwSignal::new(None::<Overview>);
    let error = RwSignal::new(None::<String>);
    // (settled_total, when) of each look, for the rate.
    let samples = RwSignal::new(VecDeque::<(u64, f64)>::new());
    let tick = RwSignal::new(0u64);
    if let Ok(h) = set_interval_with_handle(move || tick.update(|n| *n += 1), Duration::from_millis(CONSOLE_REFRESH_MS))
    {
        on_cleanup(move || h.clear());
    }
    let api_for_load = api.clone();
    let load = LocalResource::new(move || {
        tick.track();
        let api = api_for_load.clone();
        async move { api.overview().await }
    });
    Effect::new(move || match load.get() {
        Some(Ok(o)) => {
            let now = js_sys::Date::now() / 1000.0;
            samples.update(|s| {
                s.push_back((o.settled_total, now));
                while s.len() > RATE_SAMPLES_MAX + 1 {
                    s.pop_front();
                }
            });
            overview.set(Some(o));
            error.set(None);
        }
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
    // Packages settled per second between consecutive looks.
    let rates = move || {
        let s = samples.get();
        s.iter()
            .zip(s.iter().skip(1))
            .map(|(a, b)| {
                let dt = (b.1 - a.1).max(0.001);
                #[expect(clippy::cast_precision_loss, reason = "a chart: counts far below 2^52")]
                let dn = b.0.saturating_sub(a.0) as f64;
                dn / dt
            })
            .collect::<Vec<f64>>()
    };
    view! {
        <p class="error" id="console-error">{move || error.get()}</p>
        {move || overview.get().map(|o| {
            let holder = o.ring.iter().find(|m| m.holding).map(|m| m.name.clone());
            let token = o.ring.iter().max_by_key(|m| (m.epoch, m.seq)).map(|m| (m.epoch, m.seq)).unwrap_or_default();
            let rate_now = rates().last().copied().unwrap_or(0.0);
            view! {
                <div class="console-grid">
                    <div class="card">
                        <h3>{c.t("ring")}</h3>
                        <Ring members=o.ring.clone() />
                        <p id="console-holder">{move || t(c.lang.get(), "holder")} " " {holder.clone().unwrap_or_else(|| "—".into())}</p>
                        <p id="console-token">{move || t(c.lang.get(), "epoch")} " " <span id="console-epoch">{token.0}</span>
                            " · " {move || t(c.lang.get(), "pass")} " " <span id="console-seq">{token.1}</span></p>
                    </div>
                    <div class="card">
                        <h3>{c.t("settlement")}</h3>
                        <table class="stats">
                            <tr><th>{c.t("queued")}</th><td id="console-queued">{o.queued}</td></tr>
                            <tr><th>{c.t("in_doubt")}</th><td id="console-in-doubt">{o.in_doubt}</td></tr>
                            <tr><th>{c.t("undelivered")}</th><td id="console-undelivered">{o.undelivered}</td></tr>
                            <tr><th>{c.t("settled_total")}</th><td id="console-settled">{o.settled_total}</td></tr>
                            <tr><th>{c.t("settled_rate")}</th><td id="console-rate">{tenths(rate_now)}</td></tr>
                        </table>
                        <Spark values=rates() />
                    </div>
                    <div class="card">
                        <h3>{c.t("banks_health")}</h3>
                        <table id="console-banks">
                            {o.ring.iter().cloned().map(|m| {
                                let up = m.reachable;
                                let age = m.last_grant_age_ms.map_or_else(|| "—".into(), |a| format!("{}.{} s", a / 1000, a % 1000 / 100));
                                view! {
                                    <tr class=if up { "up" } else { "down" }>
                                        <td>{m.name}</td>
                                        <td>{move || t(c.lang.get(), if up { "reachable" } else { "unreachable" })}</td>
                                        <td>{age}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </table>
                    </div>
                    <div class="card">
                        <h3>{c.t("positions")}</h3>
                        <Positions overview=o.clone() />
                    </div>
                </div>
            }
        })}
    }
}

/// The ring as a circle of banks, the holder filled.
#[component]
fn Ring(members: Vec<RingMember>) -> impl IntoView {
    let n = members.len().max(1);
    #[expect(clippy::cast_precision_loss, reason = "a drawing: a handful of banks")]
    let at = move |i: usize| {
        let a = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        // The browser's Math: Rust's own sin and cos would be compiled into the wasm.
        (100.0 + 70.0 * js_sys::Math::cos(a), 100.0 + 70.0 * js_sys::Math::sin(a))
    };
    view! {
        <svg id="console-ring" viewBox="0 0 200 200" width="200" height="200" role="img">
            <circle cx="100" cy="100" r="70" fill="none" stroke="#ccd" stroke-width="2" />
            {members.iter().enumerate().map(|(i, m)| {
                let (x, y) = at(i);
                let fill = if !m.reachable { "#b00020" } else if m.holding { "#fca311" } else { "#14213d" };
                view! {
                    <g class="ring-bank" data-bank=m.bank.get().to_string() data-holding=m.holding.to_string()>
                        <circle cx=tenths(x) cy=tenths(y) r="16" fill=fill />
                        <text x=tenths(x) y=tenths(y + 4.0) text-anchor="middle" fill="#fff" font-size="12">
                            {m.bank.get().to_string()}
                        </text>
                    </g>
                }
            }).collect_view()}
        </svg>
    }
}

/// A small line chart of the last values.
#[component]
fn Spark(values: Vec<f64>) -> impl IntoView {
    let max = values.iter().copied().fold(1.0_f64, f64::max);
    #[expect(clippy::cast_precision_loss, reason = "a drawing: at most 60 points")]
    let points: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!("{},{}", tenths(i as f64 * 200.0 / RATE_SAMPLES_MAX as f64), tenths(50.0 - 46.0 * v / max))
        })
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <svg id="console-chart" viewBox="0 0 200 50" width="200" height="50" role="img">
            <polyline points=points fill="none" stroke="#fca311" stroke-width="2" />
        </svg>
    }
}

/// The net positions this bank knows: its row (what it owes each bank) and column (the same,
/// seen from the other side); cells between two other banks are theirs to know.
#[component]
fn Positions(overview: Overview) -> impl IntoView {
    let banks: Vec<_> = overview.ring.iter().map(|m| m.bank).collect();
    let me = overview.bank;
    let net = move |from: shared::BankId, to: shared::BankId| -> String {
        let find = |b| overview.positions.iter().find(|p| p.bank == b).map(|p| p.net.clone());
        if from == to {
            "·".into()
        } else if from == me {
            find(to).unwrap_or_else(|| "0".into())
        } else if to == me {
            find(from)
                .map(|n| n.strip_prefix('-').map_or_else(|| format!("-{n}"), str::to_string))
                .unwrap_or_else(|| "0".into())
        } else {
            "—".into()
        }
    };
    view! {
        <table id="console-positions">
            <tr><th></th>{banks.iter().map(|b| view! { <th>{b.get().to_string()}</th> }).collect_view()}</tr>
            {banks.iter().map(|from| view! {
                <tr><th>{from.get().to_string()}</th>
                    {banks.iter().map(|to| view! { <td>{net(*from, *to)}</td> }).collect_view()}
                </tr>
            }).collect_view()}
        </table>
    }
}
