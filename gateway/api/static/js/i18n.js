// Console labels in Simplified Chinese (default) and English, following the glossary in
// DOMAIN.md. Metric and event labels come from the gateway (GET /api/v1/vocabulary).

const zh = {
  title: '监控中心值班台', login: '登录', username: '用户名', password: '密码',
  logout: '退出', loginFailed: '登录失败', alarms: '报警', devices: '设备',
  workOrders: '工程维修单', shift: '交接班', live: '实时', offline: '已断开',
  building: '楼栋', kind: '设备类型', priority: '优先级', state: '状态', all: '全部',
  time: '时间', device: '设备', message: '报警内容', count: '次数', actions: '操作',
  value: '数值', ack: '确认', reset: '复位', shelve: '搁置', unshelve: '取消搁置',
  comment: '备注', open: '查看设备', noAlarms: '当前没有报警', shelvedHidden: '已搁置 {n} 条（已隐藏）',
  flood: '报警泛滥：{window} 分钟内 {count} 条报警（阈值 {threshold}）— 请按优先级处理',
  reason: '原因', minutes: '时长', cancel: '取消', confirm: '确认', save: '保存',
  shelveTitle: '搁置报警', commentTitle: '添加备注', minutesN: '{n} 分钟', hoursN: '{n} 小时',
  silence: '静音', silenced: '已静音', silenceHint: '静音不等于确认：报警仍需确认',
  status: '状态', lastSeen: '最后通信', never: '从未', floor: '楼层', zone: '区域',
  latest: '最新数据', history: '历史曲线', deviceAlarms: '设备报警', commands: '远程操作',
  noData: '暂无数据', range: '范围', metric: '指标', hours1: '1 小时', hours6: '6 小时',
  hours24: '24 小时', back: '返回', cmdConfirm: '确认对 {device} 执行“{action}”？此操作将被记录。',
  cmdDone: '指令已发送', cmdOpen: '抬杆', cmdClose: '落杆', cmdRelease: '远程开门',
  woTitle: '工单', woDue: '时限', woRemaining: '剩余', woBreached: '已超时', woStatus: '状态',
  woNone: '没有未完成的工单', category: '类别', location: '位置',
  onDuty: '值班', noShift: '当前无人值班', startShift: '开始值班', shiftFor: '值班时长',
  shiftOver: '本班已超过 {h} 小时，请交接班', operator: '值班员', startedAt: '接班时间',
  handover: '交班', handoverTitle: '交班：核对未结报警与工单', handoverNote: '交班说明',
  handoverConfirm: '我已核对以上全部未结报警与工单，确认交班',
  handoverPending: '{from} 于 {at} 提交交班，等待接班', accept: '接班',
  acceptTitle: '接班：确认接收以下未结报警与工单', acceptNote: '接班说明',
  withdraw: '撤回交班', takeover: '接管值班', takeoverReason: '接管原因（原值班员未交班）',
  handoverHistory: '交接班记录', from: '交班人', to: '接班人', at: '时间',
  openAlarms: '未结报警', openOrders: '未完成工单', none: '无', checkAll: '请逐条勾选核对',
  viewerOnly: '只读账号：可查看，不能操作', error: '错误', filters: '筛选',
  estate: '小区', lang: 'English', role: '角色', emptyBoard: '没有设备',
  reconnecting: '实时推送已断开，正在重连…',
  dutyNone: '当前无人值班：点此开始值班 →', dutyOther: '{who} 正在值班：接班请先由其交班 →',
  dutyAccept: '{from} 已提交交班：点此核对并接班 →',
};

const en = {
  title: 'Monitoring centre console', login: 'Log in', username: 'User name',
  password: 'Password', logout: 'Log out', loginFailed: 'Login failed', alarms: 'Alarms',
  devices: 'Devices', workOrders: 'Work orders', shift: 'Shift handover', live: 'Live',
  offline: 'Disconnected', building: 'Building', kind: 'Device type', priority: 'Priority',
  state: 'State', all: 'All', time: 'Time', device: 'Device', message: 'Alarm',
  count: 'Count', actions: 'Actions', value: 'Value', ack: 'Acknowledge', reset: 'Reset',
  shelve: 'Shelve', unshelve: 'Unshelve', comment: 'Comment', open: 'Open device',
  noAlarms: 'No alarms', shelvedHidden: '{n} shelved (hidden)',
  flood: 'Alarm flood: {count} alarms in {window} min (threshold {threshold}) — work by priority',
  reason: 'Reason', minutes: 'Duration', cancel: 'Cancel', confirm: 'Confirm', save: 'Save',
  shelveTitle: 'Shelve alarm', commentTitle: 'Add comment', minutesN: '{n} min',
  hoursN: '{n} h', silence: 'Silence', silenced: 'Silenced',
  silenceHint: 'Silence is not acknowledge: alarms still need acknowledging',
  status: 'Status', lastSeen: 'Last seen', never: 'never', floor: 'Floor', zone: 'Zone',
  latest: 'Latest values', history: 'History', deviceAlarms: 'Alarms of this device',
  commands: 'Commands', noData: 'No data', range: 'Range', metric: 'Metric',
  hours1: '1 h', hours6: '6 h', hours24: '24 h', back: 'Back',
  cmdConfirm: 'Send "{action}" to {device}? This is recorded.', cmdDone: 'Command sent',
  cmdOpen: 'Open barrier', cmdClose: 'Close barrier', cmdRelease: 'Release door',
  woTitle: 'Work order', woDue: 'Due', woRemaining: 'Remaining', woBreached: 'SLA breached',
  woStatus: 'Status', woNone: 'No open work orders', category: 'Category',
  location: 'Location', onDuty: 'On duty', noShift: 'Nobody on duty',
  startShift: 'Start shift', shiftFor: 'On duty for',
  shiftOver: 'This shift has passed {h} h: hand over now', operator: 'Operator',
  startedAt: 'Started', handover: 'Hand over',
  handoverTitle: 'Hand over: review the open alarms and work orders',
  handoverNote: 'Handover note',
  handoverConfirm: 'I have reviewed every open alarm and work order above',
  handoverPending: '{from} handed over at {at}; waiting for the incoming operator',
  accept: 'Accept shift', acceptTitle: 'Accept: take over these open alarms and work orders',
  acceptNote: 'Note', withdraw: 'Withdraw handover', takeover: 'Take over shift',
  takeoverReason: 'Reason (the operator on duty did not hand over)',
  handoverHistory: 'Shift handovers', from: 'Outgoing', to: 'Incoming', at: 'Time',
  openAlarms: 'Open alarms', openOrders: 'Open work orders', none: 'none',
  checkAll: 'Tick each item as you review it', viewerOnly: 'Read-only account',
  error: 'Error', filters: 'Filters', estate: 'Estate', lang: '中文', role: 'Role',
  emptyBoard: 'No devices', reconnecting: 'Live feed lost, reconnecting…',
  dutyNone: 'Nobody is on duty: start your shift here →',
  dutyOther: '{who} is on duty: they hand over before you take the shift →',
  dutyAccept: '{from} has handed over: review and accept here →',
};

const enums = {
  priority: {
    1: ['紧急', 'Emergency'], 2: ['高', 'High'], 3: ['中', 'Medium'], 4: ['低', 'Low'],
  },
  state: {
    normal: ['正常', 'Normal'],
    active_unacknowledged: ['报警未确认', 'Active, unacknowledged'],
    active_acknowledged: ['报警已确认', 'Active, acknowledged'],
    returned_unacknowledged: ['已恢复未确认', 'Returned, unacknowledged'],
    latched: ['锁存待复位', 'Latched (needs reset)'],
    shelved: ['已搁置', 'Shelved'],
    suppressed: ['已抑制', 'Suppressed'],
    out_of_service: ['停用', 'Out of service'],
  },
  kind: {
    access_gate: ['门禁', 'Access control'],
    elevator: ['载人电梯', 'Passenger elevator'],
    water_tank: ['二次供水水箱', 'Water tank'],
    parking_barrier: ['道闸', 'Barrier gate'],
    generic: ['其他设备', 'Other device'],
  },
  status: {
    online: ['在线', 'Online'], offline: ['离线', 'Offline'],
    maintenance: ['维保中', 'In maintenance'], alarm: ['报警', 'In alarm'],
    unknown: ['未知', 'Unknown'],
  },
  wo: {
    open: ['待受理', 'Open'], accepted: ['已受理', 'Accepted'], dispatched: ['已派工', 'Dispatched'],
    on_site: ['已到场', 'On site'], done: ['已完成', 'Done'], followed_up: ['已回访', 'Followed up'],
    closed: ['已销号', 'Closed'],
  },
  role: {
    viewer: ['查看', 'Viewer'], operator: ['值班员', 'Operator'], engineer: ['工程部', 'Engineer'],
    admin: ['管理员', 'Administrator'],
  },
};

let lang = pickLanguage();

function pickLanguage() {
  const saved = localStorage.getItem('console.lang');
  if (saved === 'zh' || saved === 'en') return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages
    : [navigator.language || 'zh-CN'];
  return langs[0].toLowerCase().startsWith('en') ? 'en' : 'zh';
}

export function getLang() { return lang; }

export function setLang(next) {
  lang = next;
  localStorage.setItem('console.lang', next);
  document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
}

export function t(key, vars = {}) {
  const text = (lang === 'zh' ? zh : en)[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

export function label(group, value) {
  const pair = enums[group] && enums[group][value];
  if (!pair) return String(value ?? '');
  return lang === 'zh' ? pair[0] : pair[1];
}

// "水箱低水位 / Tank level low" → the half in the current language.
export function bilingual(text) {
  if (!text) return '';
  const parts = String(text).split(' / ');
  if (parts.length !== 2) return text;
  const zhFirst = /[\u4e00-\u9fff]/.test(parts[0]);
  const [zhPart, enPart] = zhFirst ? parts : [parts[1], parts[0]];
  return lang === 'zh' ? zhPart : enPart;
}

export function labelFrom(entry, fallback) {
  if (!entry) return fallback;
  return lang === 'zh' ? entry.zh : entry.en;
}

setLang(lang);
