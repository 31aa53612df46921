//! The browser app's entry point: mount the app.

fn main() {
    leptos::mount::mount_to_body(frontend::app::App);
}
