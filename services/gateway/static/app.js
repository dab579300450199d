// BookMySeat's page behaviour. Every page works without this file; it only
// adds comfort: the trailer plays in a modal instead of on YouTube, and a
// poster that fails to load is replaced by the gateway's drawn one.
(function () {
  "use strict";

  // Trailer modal. The button is a plain link to YouTube; with a <dialog>
  // available we open the privacy-enhanced player in place instead. The
  // iframe gets its src only when opened and loses it on close, so the video
  // (and its sound) stops whichever way the modal is closed.
  function setUpTrailer() {
    var button = document.getElementById("trailer-button");
    var dialog = document.getElementById("trailer-dialog");
    if (!button || !dialog || typeof dialog.showModal !== "function") {
      return;
    }
    var frame = dialog.querySelector("iframe");
    var embed = button.getAttribute("data-embed");
    if (!frame || !embed) {
      return;
    }

    button.addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
        return; // let "open in new tab" work
      }
      event.preventDefault();
      frame.setAttribute("src", embed);
      dialog.showModal();
    });

    // Escape fires "cancel" then "close"; the close button and a backdrop
    // click call close(). Every path ends here.
    dialog.addEventListener("close", function () {
      frame.setAttribute("src", "about:blank");
      button.focus();
    });

    dialog.querySelectorAll("[data-close-dialog]").forEach(function (close) {
      close.addEventListener("click", function () {
        dialog.close();
      });
    });

    // A click on the dialog element itself (not its content) is a click on
    // the backdrop.
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) {
        dialog.close();
      }
    });
  }

  // Broken poster images fall back to the generated poster of the film.
  function setUpPosterFallbacks() {
    document.querySelectorAll("img[data-fallback]").forEach(function (img) {
      var useFallback = function () {
        var fallback = img.getAttribute("data-fallback");
        if (fallback && img.getAttribute("src") !== fallback) {
          img.setAttribute("src", fallback);
        }
      };
      img.addEventListener("error", useFallback);
      if (img.complete && img.naturalWidth === 0) {
        useFallback();
      }
    });
  }

  function start() {
    setUpTrailer();
    setUpPosterFallbacks();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
