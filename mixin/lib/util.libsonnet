// Formatting and selector helpers shared by the rules and the dashboards. Numbers reach the
// rules as text through these helpers only: jsonnet's own number-to-string gives 17 digits
// (0.8 -> 0.80000000000000004), so every literal goes through %g or %d here.
{
  // PromQL literal: 80.0 -> 80, 0.80 -> 0.8.
  num(x):: if std.floor(x) == x then std.format('%d', x) else std.format('%g', x),

  // 0.8 -> 80%.
  pct(x):: std.format('%g%%', x * 100),

  local units = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 },

  isDuration(d)::
    std.isString(d)
    && local unit = if std.endsWith(d, 'ms') then 'ms' else d[std.length(d) - 1];
    local digits = std.substr(d, 0, std.length(d) - std.length(unit));
    std.objectHas(units, unit)
    && std.length(digits) > 0
    && std.length([c for c in std.stringChars(digits) if c < '0' || c > '9']) == 0,

  // Prometheus duration with one unit -> seconds.
  seconds(d)::
    assert self.isDuration(d) : 'not a Prometheus duration with one unit: %s' % [d];
    local unit = if std.endsWith(d, 'ms') then 'ms' else d[std.length(d) - 1];
    std.parseInt(std.substr(d, 0, std.length(d) - std.length(unit))) * units[unit],

  // 3600 -> 1h, 90 -> 90s.
  humanSeconds(s)::
    local n = std.floor(s);
    local fit = [u for u in [['d', 86400], ['h', 3600], ['m', 60]] if n >= u[1] && n % u[1] == 0];
    if std.length(fit) > 0 then std.format('%d%s', [n / fit[0][1], fit[0][0]]) else std.format('%ds', n),

  isZero(d):: self.seconds(d) == 0,

  // `{<selector>, <extra>}`, or `` when both are empty.
  sel(selector, extra='')::
    local parts = [p for p in [std.stripChars(selector, ' '), extra] if p != ''];
    if std.length(parts) == 0 then '' else '{' + std.join(', ', parts) + '}',

  // The same for a selector inside a Go template's printf format: a literal % must be %%.
  printfSel(selector, extra)::
    self.sel(std.strReplace(selector, '%', '%%'), extra),
}
