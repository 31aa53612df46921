//! Live updates by server push: the account's event stream (`GET /api/accounts/{id}/events`,
//! opened with a ticket) bumps the dashboard's [`Refresh`] at every change, so the page shows a
//! settled package or an incoming Pix without polling. While the stream is down the dashboard
//! polls; everything here ends with the page (logout closes the stream).

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use super::Refresh;
use crate::app::Ctx;

/// How long to wait before opening a new stream after one closed for good.
const RECONNECT_MS: u32 = 3_000;

/// An open stream and the handlers it calls (dropped with it).
struct Stream {
    source: web_sys::EventSource,
    _handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.source.close();
    }
}

thread_local! {
    /// The open stream of each live page. Kept here, not in a reactive store: the page's
    /// cleanup must reach it after the page's own stores are gone.
    static OPEN: std::cell::RefCell<std::collections::HashMap<u64, Stream>> = Default::default();
    static NEXT_PAGE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A page's handle on its stream: which one, and whether the page still lives.
#[derive(Debug, Clone)]
struct Page {
    id: u64,
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Page {
    fn alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set(&self, s: Option<Stream>) {
        // Dropping the old stream closes it.
        let old = OPEN.with(|o| match s {
            Some(s) => o.borrow_mut().insert(self.id, s),
            None => o.borrow_mut().remove(&self.id),
        });
        drop(old);
    }
}

/// Starts the push for account `id`; `live` is true while a stream is open.
pub fn start(c: Ctx, id: u64, refresh: Refresh, live: RwSignal<bool>) {
    let page = Page {
        id: NEXT_PAGE.with(|n| n.replace(n.get() + 1)),
        alive: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
    };
    let last_id = StoredValue::new(None::<String>);
    // At logout the stream closes and no reconnection starts.
    let (gone, key) = (page.alive.clone(), page.id);
    on_cleanup(move || {
        gone.store(false, std::sync::atomic::Ordering::Relaxed);
        let old = OPEN.with(|o| o.borrow_mut().remove(&key));
        drop(old);
    });
    connect(c, id, refresh, live, page, last_id);
}

fn connect(c: Ctx, id: u64, refresh: Refresh, live: RwSignal<bool>, page: Page, last_id: StoredValue<Option<String>>) {
    let api = c.api();
    leptos::task::spawn_local(async move {
        let Ok(ticket) = api.events_ticket(id).await else {
            retry(c, id, refresh, live, page, last_id);
            return;
        };
        // The page may have gone while the ticket was on its way.
        if !page.alive() {
            return;
        }
        let mut url = format!("{}/api/accounts/{id}/events?ticket={}", api.base, ticket.ticket);
        if let Some(l) = last_id.try_get_value().flatten() {
            url.push_str(&format!("&last_event_id={l}"));
        }
        let Ok(source) = web_sys::EventSource::new(&url) else {
            retry(c, id, refresh, live, page, last_id);
            return;
        };
        let on_change = Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
            if let Some(m) = ev.dyn_ref::<web_sys::MessageEvent>() {
                let _ = last_id.try_set_value(Some(m.last_event_id()));
            }
            let _ = live.try_set(true);
            refresh.bump();
        });
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let _ = live.try_set(true);
        });
        let on_error = {
            let (source, page) = (source.clone(), page.clone());
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                let _ = live.try_set(false);
                // CONNECTING: the browser tries again by itself (with Last-Event-ID). CLOSED
                // (the ticket expired, the replica refused): a new ticket, later.
                if source.ready_state() == web_sys::EventSource::CLOSED {
                    retry(c, id, refresh, live, page.clone(), last_id);
                }
            })
        };
        let on_end = {
            let page = page.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                let _ = live.try_set(false);
                // Not from inside this handler: dropping the stream drops the handler too.
                let page = page.clone();
                gloo_timers::callback::Timeout::new(0, move || page.set(None)).forget();
            })
        };
        for kind in ["statement", "package"] {
            let _ = source.add_event_listener_with_callback(kind, on_change.as_ref().unchecked_ref());
        }
        let _ = source.add_event_listener_with_callback("open", on_open.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("end", on_end.as_ref().unchecked_ref());
        page.set(Some(Stream { source, _handlers: vec![on_change, on_open, on_error, on_end] }));
    });
}

fn retry(c: Ctx, id: u64, refresh: Refresh, live: RwSignal<bool>, page: Page, last_id: StoredValue<Option<String>>) {
    gloo_timers::callback::Timeout::new(RECONNECT_MS, move || {
        // Only while the page lives.
        if page.alive() {
            page.set(None);
            connect(c, id, refresh, live, page, last_id);
        }
    })
    .forget();
}
