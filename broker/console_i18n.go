package broker

import (
	"net/http"
	"strings"
)

// uiLangs are the console's languages; the first is the default.
var uiLangs = []string{"en", "ja"}

// uiLang is the request's language: the language cookie (set by the
// switch link), else the first of Accept-Language the console has.
func uiLang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "en" || c.Value == "ja") {
		return c.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		tag = strings.ToLower(tag)
		switch {
		case tag == "ja" || strings.HasPrefix(tag, "ja-"):
			return "ja"
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return "en"
		}
	}
	return "en"
}

// msg is key in lang (English when the table lacks it). Messages from the
// API (refusals, hints) are shown as the API words them, in English, the
// same as the CLI prints them.
func msg(lang, key string) string {
	m, ok := msgs[key]
	if !ok {
		return key
	}
	if lang == "ja" && m[1] != "" {
		return m[1]
	}
	return m[0]
}

// msgs is the console's message table: key -> {English, Japanese}.
var msgs = map[string][2]string{
	"skip":     {"Skip to content", "本文へ移動"},
	"nav":      {"Console", "コンソール"},
	"datasets": {"Datasets", "データセット"},
	"register": {"Access register", "利用承認台帳"},
	"audit":    {"Audit log", "監査ログ"},
	"ops":      {"Operations", "運用"},
	"me":       {"My access", "自分の利用状況"},
	"logout":   {"Log out", "ログアウト"},
	"error":    {"Error", "エラー"},
	"status":   {"Status", "ステータス"},
	"back":     {"Back", "戻る"},

	"requestid":        {"request id", "リクエストID"},
	"login.title":      {"Log in to dozo", "dozo にログイン"},
	"login.username":   {"User name", "ユーザー名"},
	"login.password":   {"Password", "パスワード"},
	"login.method":     {"Login method", "ログイン方式"},
	"login.code":       {"One-time code (if asked)", "ワンタイムコード（求められた場合）"},
	"login.submit":     {"Log in", "ログイン"},
	"login.sso":        {"Sign in with single sign-on", "シングルサインオンでログイン"},
	"login.sso.note":   {"Your institution's sign-in page (OpenID Connect), through Vault.", "所属機関のログインページ（OpenID Connect）で、Vault を通してログインします。"},
	"login.note":       {"The same account as for the dozo command (dozo login). Your password goes to Vault only.", "dozo コマンド（dozo login）と同じアカウントです。パスワードは Vault にのみ送られます。"},
	"datasets.caption": {"Datasets you may see", "閲覧できるデータセット"},
	"datasets.none":    {"You have no access to any dataset.", "利用できるデータセットはありません。"},
	"dataset":          {"Dataset", "データセット"},
	"title":            {"Title", "タイトル"},
	"access.level":     {"Access level", "アクセスレベル"},
	"maxuse":           {"Maximum use period", "最長利用期間"},
	"days":             {"days", "日"},
	"files":            {"files", "ファイル"},
	"size":             {"Size", "サイズ"},
	"your.access":      {"Your access", "あなたの権限"},
	"frozen":           {"frozen", "凍結中"},
	"frozenat":         {"Frozen", "凍結"},
	"members":          {"Members", "メンバー"},
	"register.of":      {"Access register of", "利用承認台帳:"},
	"register.caption": {"Grants with their full history", "利用承認（全履歴）"},
	"register.none":    {"No grants match.", "該当する利用承認はありません。"},
	"state":            {"State", "状態"},
	"all":              {"all", "すべて"},
	"user":             {"User", "ユーザー"},
	"filter":           {"Filter", "絞り込み"},
	"export.csv":       {"Export CSV", "CSV 出力"},
	"from":             {"From", "開始日"},
	"until":            {"Until", "終了日"},
	"application":      {"Application", "利用申請"},
	"institution":      {"Institution", "所属機関"},
	"granted":          {"Granted", "承認"},
	"revoked":          {"Revoked", "取消"},
	"actions":          {"Actions", "操作"},
	"extend.until":     {"New end", "新しい終了日"},
	"extend":           {"Extend", "延長"},
	"reason":           {"Reason", "理由"},
	"revoke":           {"Revoke", "取消"},
	"grant.new":        {"Grant access", "利用を承認する"},
	"grant":            {"Grant", "承認"},
	"optional":         {"optional", "任意"},
	"done.granted":     {"Grant recorded.", "利用承認を記録しました。"},
	"done.revoked":     {"Grant revoked.", "利用承認を取り消しました。"},
	"done.frozen":      {"Freeze recorded.", "凍結を記録しました。"},
	"done.unfrozen":    {"Freeze lifted.", "凍結を解除しました。"},
	"done.scrub":       {"Scrub started.", "スクラブを開始しました。"},
	"done.cancelled":   {"Scrub cancelled.", "スクラブを中止しました。"},
	"done.job":         {"Job cancelled (a running one stops at its next step).", "ジョブを中止しました（実行中のものは次の段階で止まります）。"},
	"cancel":           {"Cancel", "中止"},

	"state.active":     {"active", "有効"},
	"state.scheduled":  {"scheduled", "予約"},
	"state.future":     {"future", "開始前"},
	"state.expired":    {"expired", "期限切れ"},
	"state.revoked":    {"revoked", "取消済"},
	"state.superseded": {"superseded", "更新済"},
	"action":           {"Action", "操作"},
	"result":           {"Result", "結果"},
	"since":            {"Since", "開始"},
	"verify":           {"Verify chain", "チェーンを検証"},
	"verify.ok":        {"the hash chain is intact; records checked:", "ハッシュチェーンは正常です。検証したレコード数:"},
	"verify.bad":       {"The hash chain is broken at record", "ハッシュチェーンが壊れています。レコード"},
	"anchors":          {"anchors in Vault checked", "Vault のアンカー検証数"},
	"export.audit":     {"Export the whole log (JSON lines)", "ログ全体を出力（JSON Lines）"},
	"audit.caption":    {"Newest first", "新しい順"},
	"audit.none":       {"No records match.", "該当するレコードはありません。"},
	"time":             {"Time", "日時"},
	"object":           {"Object", "対象"},
	"source":           {"Source", "送信元"},
	"detail":           {"Detail", "詳細"},
	"older":            {"Older records", "さらに古いレコード"},
	"targets":          {"Storage targets", "ストレージ"},
	"target":           {"Target", "ターゲット"},
	"domain":           {"Failure domain", "障害ドメイン"},
	"lastprobe":        {"Last probe", "最終確認"},
	"up":               {"up", "稼働"},
	"down":             {"down", "停止"},
	"scrubs":           {"Scrubs", "スクラブ"},
	"jobs":             {"Jobs", "ジョブ"},
	"jobs.note":        {"Key rotations, deletions, upload expiry and scrubs, newest first. A job runs on one dozod (its owner) under a lease; if that dozod stops, another takes the job over.", "鍵ローテーション、削除、アップロード期限切れ処理、スクラブ（新しい順）。ジョブは 1 台の dozod（所有者）がリース付きで実行し、その dozod が止まると別の dozod が引き継ぎます。"},
	"owner":            {"Owner", "所有者"},
	"attempts":         {"Attempts", "試行"},
	"ended":            {"Ended", "終了"},
	"requestedby":      {"Requested by", "依頼者"},
	"deep":             {"deep (read every byte)", "詳細（全バイト読取）"},
	"repair":           {"repair", "修復"},
	"scrub.start":      {"Start scrub", "スクラブ開始"},
	"progress":         {"Progress", "進捗"},
	"findings":         {"Findings", "検出"},
	"findings.latest":  {"Findings of the latest scrub", "最新スクラブの検出結果"},
	"damaged":          {"Damaged files", "損傷ファイル"},
	"started":          {"Started", "開始"},
	"file":             {"File", "ファイル"},
	"segment":          {"Segment/piece", "セグメント/ピース"},
	"kind":             {"Kind", "種別"},
	"name":             {"Name", "名前"},
	"freezes":          {"Freezes", "凍結"},
	"freeze":           {"Freeze", "凍結する"},
	"unfreeze":         {"Lift", "解除"},
	"lifted":           {"Lifted", "解除"},
	"none":             {"None.", "なし。"},
	"reports":          {"Deletion reports", "削除報告書"},
	"reports.note":     {"The report of a deleted dataset, for the NBDC data-use termination report (JSON).", "削除済みデータセットの報告書（JSON）。NBDC の利用終了報告に添付します。"},
	"reports.get":      {"Download report", "報告書をダウンロード"},
	"roles":            {"Roles", "ロール"},
	"key":              {"Registered key", "登録済みの鍵"},
	"key.none":         {"No key registered yet:", "鍵は未登録です:"},
	"mygrants":         {"My grants", "自分の利用承認"},
	"howto":            {"How to fetch", "取得方法"},
	"howto.note":       {"With the dozo command, logged in as yourself:", "dozo コマンドで、自分のアカウントでログインして:"},
}
