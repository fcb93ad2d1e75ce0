package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/dirlock"
	"github.com/featurelog/featurelog/schema"
)

// Listing and describing (SPEC §8): workspaces, feature views and
// feature services, on a data directory or a node. Both print the
// client's types, so --output json is the same either way.

// catalogAPI is what the listing commands call.
type catalogAPI interface {
	workspaces() ([]client.Workspace, error)
	views(ws string) ([]client.FeatureView, error)
	view(ws, name string) (*client.FeatureView, error)
	services(ws string) ([]client.FeatureService, error)
	service(ws, name string) (*client.FeatureService, error)
	close() error
}

// catalog returns the catalog of t and fills in *ws, when ws is not nil
// and empty, with the data directory's only workspace.
func (t *target) catalog(ws *string) (catalogAPI, error) {
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	if c != nil {
		if ws != nil && *ws == "" {
			return nil, errors.New("--workspace is required with --server")
		}
		return remoteCatalog{c}, nil
	}
	db, err := engine.Open(engine.Options{Dir: t.data, Holder: "featurelog (listing)", Logger: slog.New(slog.DiscardHandler)})
	if errors.Is(err, dirlock.ErrLocked) {
		return nil, fmt.Errorf("%w\n(to list what a running node holds, pass --server URL with a viewer's --api-key)", err)
	}
	if err != nil {
		return nil, err
	}
	if ws != nil {
		if *ws, err = onlyWorkspace(db, *ws, t.data); err != nil {
			db.Close()
			return nil, err
		}
	}
	return localCatalog{db}, nil
}

type remoteCatalog struct{ c *client.Client }

func (r remoteCatalog) workspaces() ([]client.Workspace, error) {
	return r.c.ListWorkspaces(context.Background())
}
func (r remoteCatalog) views(ws string) ([]client.FeatureView, error) {
	return r.c.ListFeatureViews(context.Background(), ws)
}
func (r remoteCatalog) view(ws, name string) (*client.FeatureView, error) {
	return r.c.FeatureView(context.Background(), ws, name)
}
func (r remoteCatalog) services(ws string) ([]client.FeatureService, error) {
	return r.c.ListFeatureServices(context.Background(), ws)
}
func (r remoteCatalog) service(ws, name string) (*client.FeatureService, error) {
	return r.c.FeatureService(context.Background(), ws, name)
}
func (r remoteCatalog) close() error { return nil }

type localCatalog struct{ db *engine.DB }

func (l localCatalog) workspaces() ([]client.Workspace, error) {
	sums, err := l.db.WorkspaceSummaries()
	out := make([]client.Workspace, len(sums))
	for i, s := range sums {
		out[i] = client.Workspace{Name: s.Name, Sources: s.Sources, FeatureViews: s.FeatureViews, FeatureServices: s.FeatureServices}
	}
	return out, err
}

func (l localCatalog) views(ws string) ([]client.FeatureView, error) {
	sums, err := l.db.FeatureViewSummaries(ws)
	out := make([]client.FeatureView, len(sums))
	for i, s := range sums {
		out[i] = viewOf(s)
	}
	return out, err
}

func (l localCatalog) view(ws, name string) (*client.FeatureView, error) {
	s, err := l.db.FeatureViewSummary(ws, name)
	if err != nil {
		return nil, err
	}
	v := viewOf(s)
	return &v, nil
}

func (l localCatalog) services(ws string) ([]client.FeatureService, error) {
	sums, err := l.db.FeatureServiceSummaries(ws)
	out := make([]client.FeatureService, len(sums))
	for i := range sums {
		out[i] = serviceOf(&sums[i])
	}
	return out, err
}

func (l localCatalog) service(ws, name string) (*client.FeatureService, error) {
	s, err := l.db.FeatureServiceSummary(ws, name)
	if err != nil {
		return nil, err
	}
	out := serviceOf(s)
	return &out, nil
}

func (l localCatalog) close() error { return l.db.Close() }

// viewOf converts an engine summary as GET .../feature-views/{name}
// encodes it.
func viewOf(s *engine.Summary) client.FeatureView {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return engine.FormatDuration(d)
	}
	return client.FeatureView{Name: s.Name, Description: s.Description, Owner: s.Owner, Source: s.Source, Tags: s.Tags,
		Entities: s.Entities, JoinKeys: s.JoinKeys, Features: s.Features, TimestampField: s.TimestampField,
		AggregationInterval: s.AggregationInterval, TTL: dur(s.TTL), BatchSchedule: dur(s.BatchSchedule),
		FeatureStartTime: opt(s.FeatureStartTime), CreatedAt: opt(s.CreatedAt), Version: s.Version, Online: s.Online, Offline: s.Offline,
		OnlineRecordCount: s.OnlineRecords, OfflineRecordCount: s.OfflineRecords, Freshness: opt(s.Freshness),
		EntityKeysOnline: s.Keys, ServingVersion: s.ServingVersion, Job: s.Job,
		Transformation: transformationOf(s.Transform), FeatureDefinitions: featureDefsOf(s.FeatureDefinitions),
		Versions: versionsOf(s.Versions, opt), Storage: client.FeatureViewStorage(s.Storage)}
}

func transformationOf(t *engine.TransformDefinition) *client.Transformation {
	if t == nil {
		return nil
	}
	out := &client.Transformation{Columns: client.TransformColumns{}, Filter: t.Filter}
	for _, c := range t.Columns {
		out.Columns = append(out.Columns, client.TransformColumn{Name: c.Name, Expression: c.Expr})
	}
	return out
}

func featureDefsOf(defs []engine.FeatureDefinition) []client.FeatureDefinition {
	out := make([]client.FeatureDefinition, len(defs))
	for i, f := range defs {
		out[i] = client.FeatureDefinition{Name: f.Name, DataType: dataTypeOf(f.Type), Function: f.Function, Column: f.Column,
			N: f.N, Percentile: f.Percentile, Precision: f.Precision}
		if f.Function != "" {
			out[i].TimeWindow = &client.Window{Size: f.Window, Offset: f.Offset}
		}
	}
	return out
}

func versionsOf(vs []engine.VersionInfo, opt func(time.Time) *time.Time) []client.FeatureViewVersion {
	out := make([]client.FeatureViewVersion, len(vs))
	for i, v := range vs {
		out[i] = client.FeatureViewVersion{Version: v.Version, CreatedAt: opt(v.CreatedAt), Serving: v.Serving, Job: v.Job}
	}
	return out
}

func serviceOf(s *engine.ServiceSummary) client.FeatureService {
	out := client.FeatureService{Name: s.Name, Description: s.Description, OnlineServingEnabled: s.OnlineServingEnabled,
		FeatureViews: s.FeatureViews, Unavailable: s.Unavailable}
	for _, f := range s.Features {
		out.Features = append(out.Features, client.NamedType{Name: f.Name, DataType: dataTypeOf(f.Type)})
	}
	for _, k := range s.JoinKeys {
		out.JoinKeys = append(out.JoinKeys, client.NamedType{Name: k.Name, DataType: dataTypeOf(k.Type)})
	}
	return out
}

// dataTypeOf names a type as the API does.
func dataTypeOf(t schema.Type) client.DataType {
	dt := client.DataType{Type: t.Kind.DataType()}
	if t.Kind == schema.Array {
		dt.ElementType = &client.DataType{Type: t.Elem.DataType()}
	}
	return dt
}

// checkOutput refuses an --output other than table or json.
func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("--output %q: use table or json", output)
	}
	return nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Example: "  featurelog version",
		Short:   "Print featurelog's version and the commit it was built from",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionText())
			return nil
		},
	}
}

// versionText describes the build: the module version ("(devel)" for a
// build of a work tree), the VCS commit, whether the tree was modified,
// and the Go version.
func versionText() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "featurelog unknown (no build information)"
	}
	commit, modified, when := "unknown", "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		case "vcs.time":
			when = ", " + s.Value
		}
	}
	if commit == "unknown" {
		commit = "unknown: built without VCS stamping (-buildvcs=false, or not from a git checkout)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	return fmt.Sprintf("featurelog %s (commit %s%s%s, %s)", version, commit, modified, when, info.GoVersion)
}

func workspacesCmd() *cobra.Command {
	var t target
	var output string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the workspaces (on a node: those the key holds a role on)",
		Example: "  featurelog workspaces list\n  featurelog workspaces list --server http://127.0.0.1:8080 --api-key $KEY --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			api, err := t.catalog(nil)
			if err != nil {
				return err
			}
			defer api.close()
			wss, err := api.workspaces()
			if err != nil {
				return err
			}
			return printWorkspaces(cmd.OutOrStdout(), wss, output)
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	t.flags(list)
	cmd := &cobra.Command{Use: "workspaces", Short: "List workspaces"}
	cmd.AddCommand(list)
	return cmd
}

func printWorkspaces(out io.Writer, wss []client.Workspace, output string) error {
	if output == "json" {
		return writeJSON(out, map[string]any{"workspaces": wss})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCES\tFEATURE VIEWS\tFEATURE SERVICES")
	for _, w := range wss {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", w.Name, w.Sources, w.FeatureViews, w.FeatureServices)
	}
	return tw.Flush()
}

// catalogCmd builds `featurelog <noun> list|describe`.
func catalogCmd(noun, short string, list func(io.Writer, catalogAPI, string, string) error, describe func(io.Writer, catalogAPI, string, string, string) error) *cobra.Command {
	cmd := &cobra.Command{Use: noun, Short: short}
	sub := func(use, short string, args cobra.PositionalArgs, run func(io.Writer, catalogAPI, string, []string, string) error) *cobra.Command {
		var t target
		var ws, output string
		c := &cobra.Command{
			Use:     use,
			Short:   short,
			Example: fmt.Sprintf("  featurelog %s %s --workspace ads\n  featurelog %s %s --workspace ads --server http://127.0.0.1:8080 --api-key $KEY --output json", noun, use, noun, use),
			Args:    args,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := checkOutput(output); err != nil {
					return err
				}
				api, err := t.catalog(&ws)
				if err != nil {
					return err
				}
				defer api.close()
				return run(cmd.OutOrStdout(), api, ws, args, output)
			},
		}
		c.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
		c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
		t.flags(c)
		return c
	}
	cmd.AddCommand(
		sub("list", "List the "+noun+" of a workspace", cobra.NoArgs, func(out io.Writer, api catalogAPI, ws string, _ []string, output string) error {
			return list(out, api, ws, output)
		}),
		sub("describe NAME", "Describe one of the "+noun+" of a workspace", exactlyOne(noun), func(out io.Writer, api catalogAPI, ws string, args []string, output string) error {
			return describe(out, api, ws, args[0], output)
		}))
	return cmd
}

// exactlyOne requires the NAME argument, saying so in the user's terms.
func exactlyOne(noun string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("describe takes one NAME, of one of the %s (got %d arguments; list them with featurelog %s list)", noun, len(args), noun)
		}
		return nil
	}
}

func featureViewsCmd() *cobra.Command {
	return catalogCmd("feature-views", "List and describe feature views", listViews, describeView)
}

func featureServicesCmd() *cobra.Command {
	return catalogCmd("feature-services", "List and describe feature services", listServices, describeService)
}

func listViews(out io.Writer, api catalogAPI, ws, output string) error {
	views, err := api.views(ws)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(out, map[string]any{"feature_views": views})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSOURCE\tENTITIES\tFEATURES\tINTERVAL\tTTL\tONLINE\tOFFLINE\tSERVING")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%t\t%t\t%s\n", v.Name, v.Version, v.Source, strings.Join(v.Entities, ","),
			len(v.Features), v.AggregationInterval, orDash(v.TTL), v.Online, v.Offline, servingText(v))
	}
	return tw.Flush()
}

func servingText(v client.FeatureView) string {
	if v.Job == "" {
		return "yes"
	}
	if v.ServingVersion > 0 {
		return fmt.Sprintf("version %d (job %s builds %d)", v.ServingVersion, v.Job, v.Version)
	}
	return "no (job " + v.Job + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func describeView(out io.Writer, api catalogAPI, ws, name, output string) error {
	v, err := api.view(ws, name)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(out, v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	var tags []string
	for k, val := range v.Tags {
		tags = append(tags, k+"="+val)
	}
	sort.Strings(tags)
	for _, row := range [][2]string{
		{"Name", v.Name}, {"Workspace", ws}, {"Description", orDash(v.Description)}, {"Owner", orDash(v.Owner)},
		{"Tags", orDash(strings.Join(tags, ", "))}, {"Source", v.Source}, {"Entities", strings.Join(v.Entities, ", ")},
		{"Join keys", strings.Join(v.JoinKeys, ", ")}, {"Timestamp field", v.TimestampField},
		{"Aggregation interval", v.AggregationInterval}, {"TTL", orDash(v.TTL)}, {"Batch schedule", orDash(v.BatchSchedule)},
		{"Feature start time", timeText(v.FeatureStartTime)}, {"Created", timeText(v.CreatedAt)},
		{"Version", fmt.Sprint(v.Version)}, {"Serving", servingText(*v)},
		{"Online", fmt.Sprint(v.Online)}, {"Offline", fmt.Sprint(v.Offline)},
		{"Online records", fmt.Sprint(v.OnlineRecordCount)}, {"Offline records", fmt.Sprint(v.OfflineRecordCount)},
		{"Entity keys online", fmt.Sprint(v.EntityKeysOnline)}, {"Freshness", timeText(v.Freshness)},
		{"Storage", storageText(v.Storage)}, {"Transformation", transformationText(v.Transformation)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	fmt.Fprintln(tw, "Versions:\t")
	for _, ver := range v.Versions {
		fmt.Fprintf(tw, "  %d\t%s\n", ver.Version, viewVersionText(ver))
	}
	fmt.Fprintln(tw, "Features:\t")
	for _, f := range v.FeatureDefinitions {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, featureText(f))
	}
	return tw.Flush()
}

func storageText(s client.FeatureViewStorage) string {
	return fmt.Sprintf("%d segments (%d bytes), %d records in the memtable (~%d bytes)", s.Segments, s.SegmentBytes, s.MemtableRecords, s.MemtableBytes)
}

func transformationText(t *client.Transformation) string {
	if t == nil {
		return "-"
	}
	var parts []string
	for _, c := range t.Columns {
		parts = append(parts, c.Name+" = "+c.Expression)
	}
	if t.Filter != "" {
		parts = append(parts, "filter "+t.Filter)
	}
	return strings.Join(parts, "; ")
}

func viewVersionText(v client.FeatureViewVersion) string {
	state := "serving"
	if !v.Serving {
		state = "not serving"
	}
	if v.Job != "" {
		state += ", job " + v.Job
	}
	return state + ", created " + timeText(v.CreatedAt)
}

// featureText spells a feature's definition briefly (--output json has
// the function's parameters): "int64 = count(clicked) over 1h offset 1h",
// or "int64 = clicked" for an attribute.
func featureText(f client.FeatureDefinition) string {
	if f.Function == "" || f.TimeWindow == nil {
		return f.DataType.String() + " = " + f.Column
	}
	window := f.TimeWindow.Size
	if f.TimeWindow.Offset != "" {
		window += " offset " + f.TimeWindow.Offset
	}
	return fmt.Sprintf("%s = %s(%s) over %s", f.DataType, f.Function, f.Column, window)
}

func listServices(out io.Writer, api catalogAPI, ws, output string) error {
	svcs, err := api.services(ws)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(out, map[string]any{"feature_services": svcs})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tONLINE\tFEATURES\tJOIN KEYS\tFEATURE VIEWS\tSERVING")
	for _, s := range svcs {
		fmt.Fprintf(tw, "%s\t%t\t%d\t%s\t%s\t%s\n", s.Name, s.OnlineServingEnabled, len(s.Features), namesOf(s.JoinKeys),
			strings.Join(s.FeatureViews, ","), serviceServing(s))
	}
	return tw.Flush()
}

func namesOf(ts []client.NamedType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return strings.Join(names, ",")
}

func serviceServing(s client.FeatureService) string {
	if s.Unavailable != "" {
		return "no: " + s.Unavailable
	}
	return "yes"
}

func describeService(out io.Writer, api catalogAPI, ws, name, output string) error {
	s, err := api.service(ws, name)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(out, s)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"Name", s.Name}, {"Workspace", ws}, {"Description", orDash(s.Description)},
		{"Online serving enabled", fmt.Sprint(s.OnlineServingEnabled)}, {"Serving", serviceServing(*s)},
		{"Feature views", strings.Join(s.FeatureViews, ", ")},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	fmt.Fprintln(tw, "Join keys:\t")
	for _, k := range s.JoinKeys {
		fmt.Fprintf(tw, "  %s\t%s\n", k.Name, k.DataType)
	}
	fmt.Fprintln(tw, "Features:\t")
	for _, f := range s.Features {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, f.DataType)
	}
	return tw.Flush()
}
