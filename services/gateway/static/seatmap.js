// The seat page, live. Without this file the page still works: seats are
// checkboxes in a form that holds them through a plain POST. With it:
//   - picking seats updates the running total at once;
//   - "Hold seats" and "Release seats" go through the JSON API without a
//     reload, and the hold's countdown runs;
//   - "Checkout" goes through the JSON API to the payment page (the plain
//     form post is refused by the browser there, see below);
//   - seats change state live: the page listens to the showtime's event
//     stream (Server-Sent Events). The stream starts with a snapshot of the
//     whole map, also after every reconnect, and each change carries the
//     map's version, so an event older than what is drawn is ignored.
// All data comes from data-* attributes and the API (the CSP allows no
// inline script).
(function () {
  "use strict";

  var form = document.querySelector("[data-seat-form]");
  if (!form) {
    return;
  }
  var showtimeId = form.getAttribute("data-showtime");
  var currency = form.getAttribute("data-currency") || "INR";
  var version = Number(form.getAttribute("data-version")) || 0;
  var api = "/api/v1/showtimes/" + encodeURIComponent(showtimeId);
  // Every state-changing API call carries the session's CSRF token, which
  // the server put in the form for the no-JS path.
  var csrfInput = form.querySelector("[data-csrf]");
  var csrfToken = csrfInput ? csrfInput.value : "";
  var signedOut = form.hasAttribute("data-signed-out");

  var selectionText = document.querySelector("[data-selection-text]");
  var selectionTotal = document.querySelector("[data-selection-total]");
  var holdButton = document.querySelector("[data-hold-button]");
  var errorBox = document.querySelector("[data-seat-error]");
  var announcer = document.querySelector("[data-announcer]");
  var panel = document.querySelector("[data-hold-panel]");
  var releaseForm = document.querySelector("[data-release-form]");
  // The release and the checkout forms both carry the hold's id.
  var holdIdInputs = Array.prototype.slice.call(document.querySelectorAll("[data-hold-id]"));
  var holdIdInput = holdIdInputs[0] || null;
  var holdSeats = document.querySelector("[data-hold-seats]");
  var holdTotal = document.querySelector("[data-hold-total]");
  var holdUntil = document.querySelector("[data-hold-until]");
  var countdown = document.querySelector("[data-countdown]");

  var seats = {};
  form.querySelectorAll(".seat__input").forEach(function (input) {
    seats[input.value] = input;
  });

  var myHoldId = holdIdInput && holdIdInput.value ? holdIdInput.value : null;
  var heldUntil = null;
  var ticker = null;
  // Seats of a hold request on its way: their own "held" event may come
  // before the answer, and must not be taken for someone else's.
  var pending = {};

  var STATE_TEXT = {
    available: "available",
    mine: "held by you",
    held: "held by someone else",
    booked: "sold",
    blocked: "not on sale",
    unpriced: "not on sale"
  };

  var formatter = (function () {
    try {
      return new Intl.NumberFormat(currency === "INR" ? "en-IN" : "en", {
        style: "currency",
        currency: currency,
        currencyDisplay: currency === "INR" ? "symbol" : "code"
      });
    } catch (e) {
      return null;
    }
  })();
  var minorDigits = formatter ? formatter.resolvedOptions().maximumFractionDigits : 2;

  // Amounts are integer minor units; whole amounts drop their ".00" as the
  // server's formatting does.
  function money(minor) {
    var major = minor / Math.pow(10, minorDigits);
    if (!formatter) {
      return currency + " " + major.toFixed(minorDigits);
    }
    var text = formatter.format(major);
    return minor % Math.pow(10, minorDigits) === 0 ? text.replace(/\.0+$/, "") : text;
  }

  function announce(text) {
    if (announcer) {
      announcer.textContent = "";
      window.setTimeout(function () {
        announcer.textContent = text;
      }, 50);
    }
  }

  function showError(text) {
    if (!errorBox) {
      return;
    }
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function selectedInputs() {
    return Object.keys(seats)
      .map(function (label) {
        return seats[label];
      })
      .filter(function (input) {
        return input.checked;
      });
  }

  function updateSelection() {
    var chosen = selectedInputs();
    var total = chosen.reduce(function (sum, input) {
      return sum + (Number(input.getAttribute("data-price")) || 0);
    }, 0);
    var labels = chosen.map(function (input) {
      return input.value;
    });
    if (selectionText) {
      selectionText.textContent =
        labels.length === 0
          ? "No seats selected yet."
          : labels.length + (labels.length === 1 ? " seat: " : " seats: ") + labels.join(", ");
    }
    if (selectionTotal) {
      selectionTotal.textContent = money(total);
    }
    // Holds replace each other, so the selection is what the next hold would
    // be; offering to hold exactly the seats already held would do nothing.
    var mine = Object.keys(seats).filter(function (label) {
      return seats[label].getAttribute("data-state") === "mine";
    });
    var alreadyHeld =
      labels.length > 0 &&
      labels.length === mine.length &&
      labels.every(function (label) {
        return mine.indexOf(label) >= 0;
      });
    if (alreadyHeld && selectionText) {
      selectionText.textContent = "Held for you: " + labels.join(", ");
    }
    if (holdButton) {
      holdButton.disabled = labels.length === 0 || alreadyHeld;
    }
  }

  // Draws one seat in `state` ("available", "held", "booked", "blocked", or
  // "mine" for the visitor's own hold).
  function setSeat(label, state, quiet) {
    var input = seats[label];
    if (!input) {
      return;
    }
    var before = input.getAttribute("data-state");
    if (before === "unpriced" || before === state) {
      return;
    }
    if (pending[label] && state === "held") {
      return; // probably our own hold; its answer decides
    }
    var wasChosen = input.checked && before === "available";
    input.setAttribute("data-state", state);
    input.parentNode.className = "seat seat--" + state;
    input.setAttribute("aria-label", input.getAttribute("data-name") + ", " + STATE_TEXT[state]);
    input.disabled = !(state === "available" || state === "mine");
    if (state === "mine") {
      input.checked = true;
    } else if (state !== "available" || before === "mine") {
      input.checked = false;
    }
    if (wasChosen && state !== "available" && state !== "mine" && !quiet) {
      announce("Seat " + label + " was just taken by someone else.");
      showError("Seat " + label + " was just taken by someone else; please pick another.");
    }
  }

  function stateOf(seat) {
    return seat.mine ? "mine" : seat.state;
  }

  function applySnapshot(map) {
    if (typeof map.version === "number" && map.version < version) {
      return;
    }
    version = map.version;
    (map.seats || []).forEach(function (seat) {
      setSeat(seat.label, stateOf(seat), false);
    });
    updateSelection();
  }

  function applyChanges(event) {
    if (event.version <= version) {
      return; // already drawn
    }
    version = event.version;
    (event.changes || []).forEach(function (change) {
      var mine = change.state === "held" && myHoldId && change.hold_id === myHoldId;
      setSeat(change.label, mine ? "mine" : change.state, false);
    });
    updateSelection();
  }

  function refetch() {
    fetch(api + "/seats", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (map) {
        if (map) {
          applySnapshot(map);
        }
      })
      .catch(function () {});
  }

  // --- the hold and its countdown ---

  function showHold(hold) {
    myHoldId = hold.id;
    holdIdInputs.forEach(function (input) {
      input.value = hold.id;
    });
    var labels = hold.seats.map(function (seat) {
      return seat.label;
    });
    labels.forEach(function (label) {
      setSeat(label, "mine", true);
    });
    // A new hold replaces the previous one: seats no longer in it are free.
    Object.keys(seats).forEach(function (label) {
      if (seats[label].getAttribute("data-state") === "mine" && labels.indexOf(label) < 0) {
        setSeat(label, "available", true);
      }
    });
    if (holdSeats) {
      holdSeats.textContent = labels.join(", ");
    }
    if (holdTotal) {
      holdTotal.textContent = money(
        labels.reduce(function (sum, label) {
          return sum + (seats[label] ? Number(seats[label].getAttribute("data-price")) || 0 : 0);
        }, 0)
      );
    }
    if (holdUntil) {
      holdUntil.setAttribute("datetime", hold.held_until);
      holdUntil.textContent = new Date(hold.held_until).toLocaleTimeString([], {
        hour: "2-digit",
        minute: "2-digit"
      });
    }
    if (holdButton) {
      holdButton.textContent = "Hold these seats instead";
    }
    if (panel) {
      panel.hidden = false;
    }
    startCountdown(hold.held_until);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "?hold=" + encodeURIComponent(hold.id));
    }
    updateSelection();
  }

  function endHold(message) {
    myHoldId = null;
    holdIdInputs.forEach(function (input) {
      input.value = "";
    });
    if (ticker) {
      window.clearInterval(ticker);
      ticker = null;
    }
    if (panel) {
      panel.hidden = true;
    }
    if (holdButton) {
      holdButton.textContent = "Hold seats";
    }
    Object.keys(seats).forEach(function (label) {
      if (seats[label].getAttribute("data-state") === "mine") {
        setSeat(label, "available", true);
      }
    });
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname);
    }
    if (message) {
      announce(message);
    }
    updateSelection();
  }

  function startCountdown(until) {
    heldUntil = Date.parse(until);
    if (ticker) {
      window.clearInterval(ticker);
    }
    var warned = false;
    var tick = function () {
      var left = Math.round((heldUntil - Date.now()) / 1000);
      if (left <= 0) {
        endHold("Your hold has ended and its seats went back on sale.");
        showError("Your hold has ended and its seats went back on sale. Pick seats to hold them again.");
        refetch();
        return;
      }
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      if (countdown) {
        countdown.textContent = " (" + minutes + ":" + (seconds < 10 ? "0" : "") + seconds + " left)";
      }
      if (left <= 60 && !warned) {
        warned = true;
        announce("One minute left on your hold.");
      }
    };
    tick();
    ticker = window.setInterval(tick, 1000);
  }

  function errorMessage(body, fallback) {
    return body && body.error && body.error.message ? body.error.message : fallback;
  }

  function readJson(response) {
    return response
      .json()
      .catch(function () {
        return null;
      })
      .then(function (body) {
        return { status: response.status, body: body };
      });
  }

  form.addEventListener("change", function (event) {
    if (event.target && event.target.classList.contains("seat__input")) {
      showError("");
      updateSelection();
    }
  });

  form.addEventListener("submit", function (event) {
    if (signedOut) {
      // Holding needs an account: let the plain form post take the visitor
      // to the sign-in page, which brings them back here.
      return;
    }
    event.preventDefault();
    var labels = selectedInputs().map(function (input) {
      return input.value;
    });
    if (labels.length === 0) {
      showError("Pick at least one seat to hold.");
      return;
    }
    showError("");
    pending = {};
    labels.forEach(function (label) {
      pending[label] = true;
    });
    if (holdButton) {
      holdButton.disabled = true;
    }
    fetch(api + "/holds", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrfToken
      },
      body: JSON.stringify({ seats: labels })
    })
      .then(readJson)
      .then(function (answer) {
        pending = {};
        if (answer.status === 201 && answer.body) {
          showHold(answer.body);
          announce("Seats " + labels.join(", ") + " are held for you.");
          return;
        }
        var taken = answer.body && answer.body.error && answer.body.error.seats;
        if (taken) {
          taken.forEach(function (label) {
            setSeat(label, "held", true);
          });
        }
        showError(errorMessage(answer.body, "The seats could not be held. Please try again."));
        refetch();
      })
      .catch(function () {
        pending = {};
        showError("The seats could not be held: the connection failed. Please try again.");
      })
      .then(updateSelection);
  });

  if (releaseForm) {
    releaseForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!myHoldId) {
        return;
      }
      fetch("/api/v1/holds/" + encodeURIComponent(myHoldId), {
        method: "DELETE",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrfToken }
      })
        .then(function (response) {
          if (response.status === 204 || response.status === 404) {
            endHold("Your seats were released.");
            return;
          }
          return readJson(response).then(function (answer) {
            showError(errorMessage(answer.body, "The seats could not be released. Please try again."));
          });
        })
        .catch(function () {
          showError("The seats could not be released: the connection failed. Please try again.");
        });
    });
  }

  // Checkout asks the API for the checkout and then goes to its payment page
  // itself, one page sooner than the plain form post (which answers a
  // gateway page that moves on: the Content-Security-Policy's form-action
  // 'self' forbids redirecting a form submission to the provider's origin).
  var checkoutForm = document.querySelector("[data-checkout-form]");
  var checkoutButton = document.querySelector("[data-checkout-button]");
  if (checkoutForm) {
    checkoutForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!myHoldId) {
        return;
      }
      showError("");
      if (checkoutButton) {
        checkoutButton.disabled = true;
      }
      var failed = function (text) {
        if (checkoutButton) {
          checkoutButton.disabled = false;
        }
        showError(text);
      };
      fetch("/api/v1/holds/" + encodeURIComponent(myHoldId) + "/checkout", {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrfToken }
      })
        .then(readJson)
        .then(function (answer) {
          if (answer.status === 201 && answer.body && answer.body.url) {
            window.location.assign(answer.body.url);
            return;
          }
          failed(errorMessage(answer.body, "The checkout could not start. Please try again."));
        })
        .catch(function () {
          failed("The checkout could not start: the connection failed. Please try again.");
        });
    });
  }

  // --- live updates ---

  function listen() {
    if (typeof window.EventSource !== "function") {
      return;
    }
    var source = new EventSource(api + "/events");
    source.addEventListener("snapshot", function (event) {
      applySnapshot(JSON.parse(event.data));
    });
    source.addEventListener("seats", function (event) {
      applyChanges(JSON.parse(event.data));
    });
    source.addEventListener("error", function () {
      // The browser reconnects by itself after a dropped connection (and the
      // new stream starts with a snapshot); after a refused one (503) it
      // gives up, so we try again a little later.
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(listen, 5000);
      }
    });
  }

  if (myHoldId && holdUntil && holdUntil.getAttribute("datetime")) {
    startCountdown(holdUntil.getAttribute("datetime"));
  }
  updateSelection();
  listen();
})();
