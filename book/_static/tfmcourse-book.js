/* tfmcourse book: small fixes that make every page usable at every width (loaded on every page).
 * Checked by tests/test_book_browser.py at 390, 1024 and 1440 px. */
(() => {
  "use strict";

  const MIN_TEXT_PX = 9;                   // = tfmcourse.viz.style.MIN_TEXT_PX
  const RECORD_KEY = "tfmcourse-figure";   // = tfmcourse.viz.style.METADATA_KEY

  const onReady = (fn) =>
    document.readyState === "loading" ? document.addEventListener("DOMContentLoaded", fn) : fn();

  /* 1. Sidebar toggles.
   * pydata-sphinx-theme 0.17 renders a second pair of .primary-toggle/.secondary-toggle buttons in its
   * (hidden) navbar, ahead of sphinx-book-theme's visible ones in the article header, and both themes
   * bind their handlers with querySelector, i.e. to the hidden pair only (pydata-sphinx-theme issue
   * 2451): the visible buttons did nothing. Forward a click on any other toggle to the bound one, so
   * both themes' behaviour applies (collapse on wide screens, the drawer on narrow ones). */
  function forwardSidebarToggles() {
    for (const cls of ["primary-toggle", "secondary-toggle"]) {
      const [bound, ...others] = document.querySelectorAll(`.${cls}`);
      for (const button of others) {
        button.addEventListener("click", (event) => {
          event.preventDefault();
          event.stopPropagation();
          bound.click();
        });
      }
    }
  }

  /* 2. Figures keep their smallest text readable.
   * A figure's <img> carries data-tfm-text-px (set at build time from the figure's font record): the
   * CSS px of its smallest text at natural size. Widget frames carry the record in the image file.
   * Never render the image narrower than the width at which that text is MIN_TEXT_PX; a wider image
   * scrolls inside its output box (see tfmcourse-book.css). */
  function keepReadable(img, textPx) {
    if (!(textPx > 0)) return;
    const apply = () => {
      const natural = img.naturalWidth;
      if (!natural) return;
      const minWidth = Math.ceil((natural * MIN_TEXT_PX) / textPx);
      img.dataset.tfmMinWidth = String(minWidth);
      img.style.width = `min(100%, ${natural}px)`;
      img.style.minWidth = `${minWidth}px`;
      img.style.height = "auto";
    };
    if (img.complete && img.naturalWidth) apply();
    else img.addEventListener("load", apply, { once: true });
  }

  const latin1 = (bytes) => String.fromCharCode(...bytes);

  // The record is a tEXt chunk of a PNG, or a comment segment of a JPEG.
  async function imageRecord(url) {
    const data = new Uint8Array(await (await fetch(url)).arrayBuffer());
    if (latin1(data.subarray(1, 4)) === "PNG") {
      for (let pos = 8; pos + 8 <= data.length;) {
        const length = new DataView(data.buffer, pos, 4).getUint32(0);
        const type = latin1(data.subarray(pos + 4, pos + 8));
        if (type === "tEXt") {
          const body = data.subarray(pos + 8, pos + 8 + length);
          const nul = body.indexOf(0);
          if (latin1(body.subarray(0, nul)) === RECORD_KEY) return JSON.parse(latin1(body.subarray(nul + 1)));
        }
        if (type === "IDAT" || type === "IEND") return null;
        pos += 12 + length;
      }
    } else if (data[0] === 0xff && data[1] === 0xd8) {
      for (let pos = 2; pos + 4 <= data.length && data[pos] === 0xff && data[pos + 1] !== 0xda;) {
        const length = (data[pos + 2] << 8) | data[pos + 3];
        if (data[pos + 1] === 0xfe) {
          const text = latin1(data.subarray(pos + 4, pos + 2 + length));
          if (text.startsWith(`${RECORD_KEY} `)) return JSON.parse(text.slice(RECORD_KEY.length + 1));
        }
        pos += 2 + length;
      }
    }
    return null;
  }

  function visitImage(img) {
    if (img.dataset.tfmSeen) return;
    img.dataset.tfmSeen = "1";
    if (img.dataset.tfmTextPx) {
      keepReadable(img, parseFloat(img.dataset.tfmTextPx));
    } else if (img.src.startsWith("blob:") && img.closest(".widget-subarea")) {
      imageRecord(img.src)
        .then((record) => {
          if (record && record.min_font_pt) {
            const px = (record.min_font_pt * (record.dpi || 72)) / 72;
            img.dataset.tfmTextPx = px.toFixed(3);
            keepReadable(img, px);
          }
        })
        .catch(() => {}); // not a PNG we wrote: leave it as it is
    }
  }

  function watchImages() {
    const scan = (root) => {
      if (root.tagName === "IMG") visitImage(root);
      else if (root.querySelectorAll) root.querySelectorAll("img").forEach(visitImage);
    };
    const main = document.querySelector("#main-content") || document.body;
    scan(main);
    // Widgets render after the page has loaded, and swap an image's src when it changes.
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === "attributes" && r.target.tagName === "IMG") {
          delete r.target.dataset.tfmSeen;
          visitImage(r.target);
        }
        r.addedNodes.forEach(scan);
      }
    }).observe(main, { childList: true, subtree: true, attributes: true, attributeFilter: ["src"] });
  }

  /* 3. Display math and outputs wider than the column scroll sideways; mark them so the CSS can show
   * it (a shadow beside math, a faded edge on a figure where more of it is hidden). */
  const SCROLLERS = ".bd-article div.cell_output, .bd-article .widget-subarea";

  function markEdges(box) {
    const more = box.scrollWidth > box.clientWidth + 1;
    box.classList.toggle("tfm-more-left", more && box.scrollLeft > 1);
    box.classList.toggle("tfm-more-right", more && box.scrollLeft + box.clientWidth < box.scrollWidth - 1);
  }

  function markScrolling() {
    document.querySelectorAll('mjx-container[display="true"]').forEach((m) => {
      m.classList.toggle("tfm-scrolls", m.scrollWidth > m.clientWidth + 1);
    });
    document.querySelectorAll(SCROLLERS).forEach((box) => {
      markEdges(box);
      if (!box.dataset.tfmEdges) {
        box.dataset.tfmEdges = "1";
        box.addEventListener("scroll", () => markEdges(box), { passive: true });
      }
    });
  }

  let timer = null;
  const markSoon = () => {
    clearTimeout(timer);
    timer = setTimeout(markScrolling, 150);
  };

  onReady(() => {
    forwardSidebarToggles();
    watchImages();
    window.addEventListener("load", () => {
      const p = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
      (p || Promise.resolve()).then(markScrolling);
    });
    window.addEventListener("resize", markSoon);
    document.addEventListener("load", markSoon, true); // an image (or widget frame) got its size
  });
})();
