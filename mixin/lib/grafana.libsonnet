// Minimal Grafana JSON builders (schemaVersion 39), so the mixin needs no vendored library.
// Every panel and query uses the `${datasource}` variable (file and sidecar provisioning do not
// substitute `${DS_...}` inputs).
local DS = { type: 'prometheus', uid: '${datasource}' };

{
  DS:: DS,

  target(expr, legend='{{target}}', ref='A', instant=false, format='time_series')::
    { datasource: DS, expr: expr, legendFormat: legend, refId: ref, editorMode: 'code', format: format }
    + (if instant then { instant: true, range: false } else { range: true, instant: false }),

  // steps: [[value or null, colour], ...]
  thresholds(steps):: { mode: 'absolute', steps: [{ color: s[1], value: s[0] } for s in steps] },

  timeseries(title, desc, targets, unit, min=0, max=null, steps=null, stack=false, calcs=['lastNotNull', 'max'], overrides=[])::
    {
      type: 'timeseries',
      title: title,
      description: desc,
      datasource: DS,
      targets: targets,
      fieldConfig: {
        defaults: {
          unit: unit,
          color: { mode: 'palette-classic' },
          custom: {
            drawStyle: 'line',
            lineWidth: 1,
            fillOpacity: if stack then 30 else 10,
            showPoints: 'never',
            spanNulls: false,
            stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
            thresholdsStyle: { mode: if steps != null then 'line+area' else 'off' },
          },
          thresholds: if steps != null then steps else $.thresholds([[null, 'green']]),
        } + (if min != null then { min: min } else {}) + (if max != null then { max: max } else {}),
        overrides: overrides,
      },
      options: {
        legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: calcs },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },

  stat(title, desc, targets, unit, steps, mappings=[], noValue=null, kind='stat', min=null, max=null, textMode='value_and_name', links=[])::
    {
      type: kind,
      title: title,
      description: desc,
      datasource: DS,
      targets: targets,
      fieldConfig: {
        defaults: { unit: unit, thresholds: steps, color: { mode: 'thresholds' }, mappings: mappings }
                  + (if noValue != null then { noValue: noValue } else {})
                  + (if min != null then { min: min } else {})
                  + (if max != null then { max: max } else {})
                  + (if links != [] then { links: links } else {}),
        overrides: [],
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        orientation: 'auto',
      } + (
        if kind == 'stat'
        then { textMode: textMode, colorMode: 'background', graphMode: 'none', justifyMode: 'auto' }
        else { showThresholdMarkers: true, showThresholdLabels: false }
      ),
    },

  // Instant queries merged into one table; renames: 'Value #A' -> header.
  table(title, desc, targets, unit, renames, units={}, sortBy=null)::
    {
      type: 'table',
      title: title,
      description: desc,
      datasource: DS,
      targets: targets,
      fieldConfig: {
        defaults: { unit: unit, custom: { align: 'auto', filterable: true } },
        overrides: [
          { matcher: { id: 'byName', options: name }, properties: [{ id: 'unit', value: units[name] }] }
          for name in std.objectFields(units)
        ],
      },
      options: {
        showHeader: true,
        cellHeight: 'sm',
        sortBy: if sortBy != null then [{ displayName: sortBy, desc: true }] else [],
      },
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: { excludeByName: { Time: true }, renameByName: renames } },
      ],
    },

  heatmap(title, desc, expr, yunit)::
    {
      type: 'heatmap',
      title: title,
      description: desc,
      datasource: DS,
      targets: [$.target(expr, legend='{{le}}', format='heatmap')],
      fieldConfig: {
        defaults: { unit: 'short', custom: { hideFrom: { legend: false, tooltip: false, viz: false } } },
        overrides: [],
      },
      options: {
        calculate: false,
        cellGap: 1,
        color: { mode: 'scheme', scheme: 'Oranges', scale: 'exponential', exponent: 0.5, steps: 64, fill: 'dark-orange', reverse: false },
        yAxis: { axisPlacement: 'left', unit: yunit, reverse: false },
        rowsFrame: { layout: 'auto', value: 'Connections' },
        cellValues: { unit: 'short' },
        tooltip: { mode: 'single', yHistogram: false, showColorScale: false },
        legend: { show: true },
        exemplars: { color: 'rgba(255,0,255,0.7)' },
        filterValues: { le: 1e-9 },
      },
    },

  // A dashed line for the series whose legend ends in ` maxclients`.
  dashedMaxclients:: [{
    matcher: { id: 'byRegexp', options: '.* maxclients' },
    properties: [
      { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
      { id: 'custom.fillOpacity', value: 0 },
    ],
  }],

  datasourceVariable:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    includeAll: false,
    multi: false,
    options: [],
    refresh: 1,
    regex: '',
    skipUrlSync: false,
  },

  // A multi-value query variable over label_values(), refreshed on time range change.
  queryVariable(name, label, query, allValue)::
    {
      name: name,
      label: label,
      type: 'query',
      datasource: DS,
      definition: query,
      query: { qryType: 1, query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
      current: {},
      hide: 0,
      includeAll: true,
      allValue: allValue,
      multi: true,
      options: [],
      refresh: 2,
      regex: '',
      skipUrlSync: false,
      sort: 1,
    },

  // Places [panel, width, height] items left to right, wrapping at 24 columns; numbers the ids.
  layout(items)::
    local step(acc, it) =
      local wrap = acc.x + it[1] > 24;
      local x = if wrap then 0 else acc.x;
      local y = if wrap then acc.y + acc.rowH else acc.y;
      local rowH = if wrap then 0 else acc.rowH;
      {
        x: x + it[1],
        y: y,
        rowH: std.max(rowH, it[2]),
        panels: acc.panels + [it[0] { gridPos: { x: x, y: y, w: it[1], h: it[2] }, id: std.length(acc.panels) + 1 }],
      };
    std.foldl(step, items, { x: 0, y: 0, rowH: 0, panels: [] }).panels,

  dashboard(c, uid, title, desc, variables, panels)::
    {
      uid: uid,
      title: title,
      description: desc,
      tags: c.dashboardTags,
      timezone: c.dashboardTimezone,
      editable: true,
      graphTooltip: 1,
      schemaVersion: 39,
      version: 1,
      refresh: c.dashboardRefresh,
      time: { from: c.dashboardPeriod, to: 'now' },
      timepicker: {},
      fiscalYearStartMonth: 0,
      liveNow: false,
      weekStart: '',
      annotations: { list: [] },
      links: [{
        type: 'dashboards',
        tags: ['redis-clients-exporter'],
        title: 'Redis clients dashboards',
        asDropdown: false,
        includeVars: true,
        keepTime: true,
        targetBlank: false,
        icon: 'external link',
      }],
      templating: { list: variables },
      panels: panels,
    },
}
