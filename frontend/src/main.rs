//! The browser app's entry point: mount the app.

fn main() {
    leptos::mount::mount_to_body(frontend::app::App);
    // The first render is done once mount returns: marked for the browser test to read.
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark("interbank-first-render");
    }
}
