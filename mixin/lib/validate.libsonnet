// Checks _config before anything is rendered: a bad value names the key instead of producing
// rules that load but never fire.
local u = import 'util.libsonnet';

local idleBuckets = [1, 10, 60, 300, 600, 1800, 3600, 21600, 86400];

local kinds = {
  redisClientsExporterSelector: 'string',
  runbookUrlBase: 'string',
  diagnoseUrlBase: 'string',
  dashboardDiagnoseUrlBase: 'string',
  rateWindow: 'duration',
  atLimitRatio: 'ratio',
  utilisationWarningRatio: 'ratio',
  utilisationWarningFor: 'duration',
  utilisationCriticalRatio: 'ratio',
  utilisationCriticalFor: 'duration',
  rejectedConnectionsMinIncrease: 'number',
  rejectedConnectionsFor: 'duration',
  refusedBelowLimitFor: 'duration',
  exhaustionLookback: 'duration',
  exhaustionHorizon: 'duration',
  exhaustionMinUtilisationRatio: 'ratio',
  exhaustionFor: 'duration',
  idleLeakLe: 'number',
  idleLeakMinMaxclientsRatio: 'share',
  idleLeakMinConnections: 'number',
  idleLeakMinRatio: 'ratio',
  idleLeakFor: 'duration',
  sourceShareRatio: 'ratio',
  sourceShareMinMaxclientsRatio: 'share',
  sourceShareMinConnections: 'number',
  sourceShareFor: 'duration',
  churnPerSecond: 'number',
  churnFor: 'duration',
  diagnosisMinScore: 'ratio',
  diagnosisFor: 'duration',
  diagnosisCriticalFor: 'duration',
  maxclientsClampedFor: 'duration',
  timeoutDisabledFor: 'duration',
  tcpKeepaliveDisabledFor: 'duration',
  pubsubIdleConnections: 'number',
  pubsubIdleFor: 'duration',
  blockedClients: 'number',
  blockedClientsFor: 'duration',
  targetDownFor: 'duration',
  staleAfterSeconds: 'number',
  staleFor: 'duration',
  absentFor: 'duration',
  alertmanagerCriticalReceiver: 'string',
  alertmanagerWarningReceiver: 'string',
  alertmanagerGroupWait: 'duration',
  alertmanagerGroupInterval: 'duration',
  alertmanagerRepeatInterval: 'duration',
};

local problem(c, key) =
  local kind = kinds[key];
  if !std.objectHas(c, key) then 'missing'
  else
    local v = c[key];
    if kind == 'string' then (if std.isString(v) then null else 'not a string')
    else if kind == 'duration' then (if u.isDuration(v) then null else 'not a Prometheus duration with one unit: %s' % [std.toString(v)])
    else if !std.isNumber(v) then 'not a number: %s' % [std.toString(v)]
    else if v < 0 then 'negative: %s' % [u.num(v)]
    else if kind == 'ratio' && !(v > 0 && v <= 1) then 'not a ratio in (0, 1]: %s' % [u.num(v)]
    else if kind == 'share' && v > 1 then 'not a ratio in [0, 1]: %s' % [u.num(v)]
    else null;

function(c)
  local bad = [
    '_config.%s: %s' % [k, problem(c, k)]
    for k in std.objectFields(kinds)
    if problem(c, k) != null
  ];
  local noQuote(s) = std.length(std.findSubstr('`', s)) == 0 && std.length(std.findSubstr("'", s)) == 0;
  assert std.length(bad) == 0 : std.join('; ', bad);
  assert std.length(std.find(c.idleLeakLe, idleBuckets)) > 0 :
         '_config.idleLeakLe must be one of the buckets %s' % [std.toString(idleBuckets)];
  assert c.utilisationWarningRatio < c.utilisationCriticalRatio :
         '_config.utilisationWarningRatio must be below utilisationCriticalRatio';
  assert !u.isZero(c.rateWindow) : '_config.rateWindow must not be zero';
  assert std.isArray(c.alertmanagerIncidentLabels) && std.length(c.alertmanagerIncidentLabels) > 0
         && std.length([l for l in c.alertmanagerIncidentLabels if !std.isString(l)]) == 0 :
         '_config.alertmanagerIncidentLabels must be a non-empty list of label names';
  assert std.length(std.findSubstr('`', c.redisClientsExporterSelector)) == 0 :
         '_config.redisClientsExporterSelector must not contain ` (alert templates quote queries with it)';
  assert noQuote(c.runbookUrlBase) && std.length(std.findSubstr(' ', c.runbookUrlBase)) == 0 && std.length(std.findSubstr('"', c.runbookUrlBase)) == 0 :
         '_config.runbookUrlBase must not contain quotes or spaces';
  assert noQuote(c.diagnoseUrlBase) && std.length(std.findSubstr('"', c.diagnoseUrlBase)) == 0 :
         '_config.diagnoseUrlBase must not contain quotes';
  assert noQuote(c.dashboardDiagnoseUrlBase) && std.length(std.findSubstr('"', c.dashboardDiagnoseUrlBase)) == 0 :
         '_config.dashboardDiagnoseUrlBase must not contain quotes';
  c
