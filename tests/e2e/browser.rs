//! The system in a real browser: Debian's headless Chromium, driven through
//! chromedriver (see `webdriver.rs`), against every service running as its
//! own process.
//!
//! These tests click what a visitor clicks and find things by what the pages
//! show them — button text, the seats' accessible names ("Seat C5, Standard,
//! ₹250, available"), link text — and by the `data-*` hooks the page script
//! itself uses (`data-state` on a seat, `data-hold-panel`,
//! `data-checkout-state`). Each step saves a screenshot under
//! `$CARGO_TARGET_DIR/e2e-screenshots/` (or `target/e2e-screenshots/`), named
//! `purchase-NN-…` and `live-NN-…`, so a failure can be looked at.
//!
//! Chromium and chromedriver must be installed (`scripts/stack.sh ensure
//! --browser`, which `make test` runs); without them these tests fail saying
//! so, they never skip.

use serde_json::{Value, json};

use crate::webdriver::{Browser, By, ChromeDriver};
use crate::{Environment, System};

const PASSWORD: &str = "browser password 1";

/// A visitor's whole purchase, clicked through in Chromium: sign up with the
/// form, home page → film page → a showtime's seat map, pick two seats, hold
/// them, check out, pay on the simulated provider's page, and land on the
/// success page that confirms the booking with those seats; the booking is
/// then on the profile and the seats are sold on the map.
#[tokio::test]
async fn a_visitor_buys_two_seats_in_a_real_browser() {
    let (driver, env, system) = start().await;
    let browser = driver.new_browser("buyer").await;

    sign_up(
        &browser,
        &env,
        "greta@example.com",
        "Greta",
        Some("purchase-01"),
    )
    .await;

    // Home: the programme, with the visitor signed in.
    browser.goto(&env.url("/")).await;
    browser
        .wait_for(By::XPath("//h1[normalize-space()='Now showing']"))
        .await;
    browser.screenshot("purchase-02-home").await;
    browser
        .click(By::XPath(
            "//a[contains(@class,'film-card__link')][.//h2[normalize-space()='Metropolis']]",
        ))
        .await;

    // The film page lists showtimes; take the first.
    browser
        .wait_for(By::XPath("//h1[normalize-space()='Metropolis']"))
        .await;
    browser
        .wait_for(By::XPath("//h2[normalize-space()='Showtimes']"))
        .await;
    browser.screenshot("purchase-03-film").await;
    browser.click(By::Css("a.slot")).await;

    // The seat map: pick the first two seats on sale.
    browser.wait_for_url("/showtimes/").await;
    let showtime_url = browser.current_url().await;
    browser
        .wait_for(By::XPath("//h2[normalize-space()='Pick your seats']"))
        .await;
    browser.screenshot("purchase-04-seat-map").await;
    let picked = browser
        .execute(
            "return Array.from(document.querySelectorAll('input.seat__input[data-state=\"available\"]'))
                 .slice(0, 2).map(function (seat) { return seat.value; });",
            json!([]),
        )
        .await;
    let picked: Vec<String> = serde_json::from_value(picked).expect("seat labels");
    assert_eq!(picked.len(), 2, "the seat map offers two seats on sale");
    for label in &picked {
        browser.click(By::Css(&seat(label))).await;
    }
    browser
        .wait_until(
            "the selection to name both seats",
            "return document.querySelector('[data-selection-text]').textContent === arguments[0];",
            json!([format!("2 seats: {}", picked.join(", "))]),
        )
        .await;
    browser.screenshot("purchase-05-seats-picked").await;

    // Hold them: the page asks the API, then shows the hold and its countdown.
    browser
        .click(By::XPath("//button[normalize-space()='Hold seats']"))
        .await;
    browser.wait_for(By::Css("[data-hold-panel]")).await;
    for label in &picked {
        wait_for_seat(&browser, label, "mine").await;
    }
    let held = browser.text(By::Css("[data-hold-seats]")).await;
    let mut held: Vec<&str> = held.split(", ").collect();
    held.sort_unstable();
    let mut expected: Vec<&str> = picked.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(held, expected, "the hold panel names the picked seats");
    browser.screenshot("purchase-06-seats-held").await;

    // Checkout: the simulated provider's page (payments has no Stripe key here).
    browser
        .click(By::XPath("//button[normalize-space()='Checkout']"))
        .await;
    browser.wait_for_url("/simulated-checkout/").await;
    browser
        .wait_for(By::XPath("//h1[normalize-space()='BookMySeat checkout']"))
        .await;
    browser.screenshot("purchase-07-payment-page").await;
    browser
        .click(By::XPath("//button[starts-with(normalize-space(),'Pay ')]"))
        .await;

    // Back on the gateway's success page, which may first say "confirming"
    // and refresh itself until seating has booked the seats.
    browser.wait_for_url("/checkout/success").await;
    browser.screenshot("purchase-08-payment-received").await;
    let state = browser
        .wait_until_value(
            "the success page to finish confirming",
            "var page = document.querySelector('[data-checkout-state]');
             return page ? page.getAttribute('data-checkout-state') : null;",
            json!([]),
            |state| state.as_str().is_some_and(|s| s != "confirming"),
        )
        .await;
    assert_eq!(state, "confirmed", "the payment ends in a booking");
    let seats = browser.text(By::Css("[data-booking-seats]")).await;
    for label in &picked {
        assert!(
            seats.contains(label.as_str()),
            "seats {seats:?} name {label}"
        );
    }
    let reference = browser.text(By::Css("[data-booking-reference]")).await;
    assert!(reference.starts_with("BMS-"), "reference {reference:?}");
    browser
        .wait_for(By::XPath("//h2[normalize-space()='Metropolis']"))
        .await;
    browser.screenshot("purchase-09-confirmed").await;

    // The booking is on the profile, and its seats are sold on the map.
    browser
        .click(By::XPath("//a[normalize-space()='Your bookings']"))
        .await;
    browser
        .wait_for(By::XPath(&format!("//*[contains(text(),'{reference}')]")))
        .await;
    browser.screenshot("purchase-10-profile").await;
    browser.goto(&showtime_url).await;
    for label in &picked {
        let seen = wait_for_seat(&browser, label, "booked").await;
        assert!(
            seen["name"].as_str().is_some_and(|n| n.ends_with(", sold")),
            "{seen}"
        );
    }
    browser.screenshot("purchase-11-seats-sold").await;

    browser.quit().await;
    drop(driver);
    system.stop().await;
}

/// Two visitors on one seat map, each in their own browser. When A holds a
/// seat, B's open page shows it taken at once, without a reload (the page's
/// live updates over Server-Sent Events), and tells B, who had picked it
/// too. B cannot take it: the seat cannot be clicked, and a page that still
/// offered it (one that missed the update) is refused by the server (409)
/// and says so. When A releases it, B's page shows it free again, live, and
/// B holds it; now A's page shows it taken.
#[tokio::test]
async fn a_seat_held_in_one_browser_turns_taken_live_in_another() {
    let (driver, env, system) = start().await;
    let alice = driver.new_browser("alice").await;
    let bob = driver.new_browser("bob").await;
    sign_up(&alice, &env, "alice@example.com", "Alice", None).await;
    sign_up(&bob, &env, "bob@example.com", "Bob", None).await;

    let http = reqwest::Client::new();
    let showtime_id = env.first_showtime(&http, "big-buck-bunny").await;
    let showtime_url = env.url(&format!("/showtimes/{showtime_id}"));
    const SEAT: &str = "C5";

    // Both open the seat map; the page script marks the window, so a reload
    // (which would start a fresh window) is noticed, and Bob's page records
    // the status of every hold request it makes.
    for browser in [&alice, &bob] {
        browser.goto(&showtime_url).await;
        wait_for_seat(browser, SEAT, "available").await;
        browser
            .execute(
                "window.bmsSamePage = true;
                 window.bmsHoldAnswers = [];
                 var plainFetch = window.fetch;
                 window.fetch = function (input, init) {
                   return plainFetch.call(window, input, init).then(function (response) {
                     if (String(input).indexOf('/holds') >= 0) {
                       window.bmsHoldAnswers.push(response.status);
                     }
                     return response;
                   });
                 };",
                json!([]),
            )
            .await;
    }

    // Bob picks C5 (not held yet: only in his selection).
    bob.click(By::Css(&seat(SEAT))).await;
    bob.wait_until(
        "C5 to be in Bob's selection",
        "var seat = document.querySelector(arguments[0]); return seat && seat.checked;",
        json!([seat(SEAT)]),
    )
    .await;
    bob.screenshot("live-01-bob-picks-c5").await;

    // Alice holds C5.
    alice.click(By::Css(&seat(SEAT))).await;
    alice
        .click(By::XPath("//button[normalize-space()='Hold seats']"))
        .await;
    wait_for_seat(&alice, SEAT, "mine").await;
    alice.screenshot("live-02-alice-holds-c5").await;

    // Bob's page, untouched, turns C5 taken and tells him.
    let seen = wait_for_seat(&bob, SEAT, "held").await;
    assert_eq!(seen["checked"], false, "{seen}");
    assert_eq!(seen["disabled"], true, "{seen}");
    assert!(
        seen["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Seat C5,") && n.ends_with(", held by someone else")),
        "{seen}"
    );
    assert_eq!(
        bob.text(By::Css("[data-seat-error]")).await,
        "Seat C5 was just taken by someone else; please pick another."
    );
    assert_same_page(&bob).await;
    bob.screenshot("live-03-bob-sees-c5-taken").await;

    // Clicking it does nothing: it is not on offer (the driver may refuse the
    // click on a disabled control; either way nothing is selected).
    let element = bob.find(By::Css(&seat(SEAT))).await.expect("seat C5");
    let _ = bob.click_element(&element).await;
    let seen = seat_state(&bob, SEAT).await;
    assert_eq!(seen["state"], "held", "{seen}");
    assert_eq!(seen["checked"], false, "{seen}");
    assert_eq!(
        bob.execute(
            "return document.querySelector('[data-hold-button]').disabled;",
            json!([])
        )
        .await,
        true,
        "nothing to hold"
    );

    // A page that still offered C5 (it missed the update, or Bob was a
    // moment faster than it) asks anyway: the server refuses with 409, and
    // the page says so and shows C5 taken. The test draws C5 back as that
    // stale page would have it (on sale, picked) and lets Bob press the
    // button.
    bob.execute(
        "var seat = document.querySelector(arguments[0]);
         seat.setAttribute('data-state', 'available');
         seat.parentNode.className = 'seat seat--available';
         seat.disabled = false;
         seat.checked = true;
         seat.dispatchEvent(new Event('change', { bubbles: true }));",
        json!([seat(SEAT)]),
    )
    .await;
    bob.click(By::XPath("//button[normalize-space()='Hold seats']"))
        .await;
    let answers = bob
        .wait_until(
            "Bob's hold request to be answered",
            "return window.bmsHoldAnswers.length > 0 ? window.bmsHoldAnswers : null;",
            json!([]),
        )
        .await;
    assert_eq!(answers, json!([409]), "the server refuses Bob's hold");
    bob.wait_until(
        "the refusal to be shown",
        "var box = document.querySelector('[data-seat-error]');
         return !box.hidden && box.textContent === arguments[0];",
        json!(["Seat C5 is no longer available; please pick another."]),
    )
    .await;
    let seen = wait_for_seat(&bob, SEAT, "held").await;
    assert_eq!(seen["checked"], false, "{seen}");
    assert!(
        bob.find(By::Css("[data-hold-panel]:not([hidden])"))
            .await
            .is_none(),
        "Bob holds nothing"
    );
    bob.screenshot("live-04-bob-refused").await;

    // Alice lets C5 go; Bob's page shows it free again, live.
    alice
        .click(By::XPath("//button[normalize-space()='Release seats']"))
        .await;
    wait_for_seat(&alice, SEAT, "available").await;
    let seen = wait_for_seat(&bob, SEAT, "available").await;
    assert_eq!(seen["disabled"], false, "{seen}");
    assert_same_page(&bob).await;
    bob.screenshot("live-05-bob-sees-c5-free").await;

    // Now Bob holds it, and Alice's page shows it taken.
    bob.click(By::Css(&seat(SEAT))).await;
    bob.click(By::XPath("//button[normalize-space()='Hold seats']"))
        .await;
    wait_for_seat(&bob, SEAT, "mine").await;
    assert_eq!(
        bob.execute("return window.bmsHoldAnswers;", json!([]))
            .await,
        json!([409, 201])
    );
    bob.screenshot("live-06-bob-holds-c5").await;
    wait_for_seat(&alice, SEAT, "held").await;
    assert_same_page(&alice).await;
    alice.screenshot("live-07-alice-sees-c5-taken").await;

    alice.quit().await;
    bob.quit().await;
    drop(driver);
    system.stop().await;
}

/// Chromium's driver, then the seeded system with every service in its own
/// process. The browser comes first: without one the test fails at once,
/// saying how to install it.
async fn start() -> (ChromeDriver, Environment, System) {
    let driver = ChromeDriver::start().await;
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let system = env.start_services().await;
    (driver, env, system)
}

/// Signs up through the sign-up form and waits until the header greets the
/// new account. With `shot`, saves a screenshot of the filled-in form.
async fn sign_up(
    browser: &Browser,
    env: &Environment,
    email: &str,
    name: &str,
    shot: Option<&str>,
) {
    browser.goto(&env.url("/signup")).await;
    browser
        .type_into(
            By::XPath("//label[contains(.,'Email address')]/input"),
            email,
        )
        .await;
    browser
        .type_into(By::XPath("//label[contains(.,'Your name')]/input"), name)
        .await;
    browser
        .type_into(By::XPath("//label[contains(.,'Password')]/input"), PASSWORD)
        .await;
    if let Some(shot) = shot {
        browser.screenshot(&format!("{shot}-sign-up")).await;
    }
    browser
        .click(By::XPath("//button[normalize-space()='Create account']"))
        .await;
    browser
        .wait_for(By::XPath(&format!(
            "//nav//a[@href='/profile'][normalize-space()='{name}']"
        )))
        .await;
}

/// The seat checkbox of `label`, found by its accessible name
/// ("Seat C5, Standard, ₹250, available").
fn seat(label: &str) -> String {
    format!("input.seat__input[aria-label^=\"Seat {label},\"]")
}

const SEAT_STATE: &str = "var seat = document.querySelector(arguments[0]);
    return seat ? {
        state: seat.getAttribute('data-state'),
        name: seat.getAttribute('aria-label'),
        checked: seat.checked,
        disabled: seat.disabled
    } : null;";

/// How the page draws seat `label` now: its state, accessible name, whether
/// it is selected and whether it can be picked.
async fn seat_state(browser: &Browser, label: &str) -> Value {
    browser.execute(SEAT_STATE, json!([seat(label)])).await
}

/// Waits (bounded) until the page draws seat `label` in `state`; returns how
/// it is drawn.
async fn wait_for_seat(browser: &Browser, label: &str, state: &str) -> Value {
    browser
        .wait_until_value(
            &format!("seat {label} to be {state}"),
            SEAT_STATE,
            json!([seat(label)]),
            |seen| seen["state"] == state,
        )
        .await
}

/// The page was not reloaded since the test marked its window.
async fn assert_same_page(browser: &Browser) {
    assert_eq!(
        browser
            .execute("return window.bmsSamePage === true;", json!([]))
            .await,
        true,
        "the page changed without a reload"
    );
}
