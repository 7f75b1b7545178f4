// Bulwark dashboard: progressive enhancement only. Every page works
// without this script; it submits filter forms when a choice changes and
// turns the charts' native tooltips into quicker ones.
(function () {
  'use strict';

  // Filter forms: a changed select or checkbox applies the filter at once.
  document.querySelectorAll('form.auto-submit').forEach(function (form) {
    form.addEventListener('change', function (ev) {
      var t = ev.target;
      if (t.tagName === 'SELECT' || (t.tagName === 'INPUT' && t.type === 'checkbox')) {
        if (typeof form.requestSubmit === 'function') {
          form.requestSubmit();
        } else {
          form.submit();
        }
      }
    });
  });

  // Chart tooltips: each bar's <title> moves to a data attribute and is
  // shown in one floating element that follows the pointer.
  var bars = document.querySelectorAll('svg rect.bar');
  if (bars.length === 0) {
    return;
  }
  var tip = document.createElement('div');
  tip.className = 'chart-tip';
  tip.setAttribute('role', 'tooltip');
  tip.hidden = true;
  document.body.appendChild(tip);
  bars.forEach(function (bar) {
    var title = bar.querySelector('title');
    if (title) {
      bar.setAttribute('data-tip', title.textContent);
      bar.removeChild(title);
    }
  });
  function show(ev) {
    var text = ev.target.getAttribute && ev.target.getAttribute('data-tip');
    if (!text) {
      tip.hidden = true;
      return;
    }
    tip.textContent = text;
    tip.hidden = false;
    var x = ev.clientX + 12;
    var y = ev.clientY + 12;
    var w = tip.offsetWidth;
    if (x + w > window.innerWidth - 8) {
      x = ev.clientX - w - 12;
    }
    tip.style.left = (x + window.scrollX) + 'px';
    tip.style.top = (y + window.scrollY) + 'px';
  }
  document.querySelectorAll('figure.chart svg').forEach(function (svg) {
    svg.addEventListener('mousemove', show);
    svg.addEventListener('mouseleave', function () { tip.hidden = true; });
  });
})();
