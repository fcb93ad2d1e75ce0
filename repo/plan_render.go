package repo

import (
	"fmt"
	"io"
	"strings"
)

// symbols and notes of each action in a rendered plan, terraform-style.
var actionSymbol = map[Action]string{Create: "+", UpdateInPlace: "~", NewVersion: "-/+", Delete: "-"}

var actionNote = map[Action]string{
	Create:        " (new)",
	UpdateInPlace: " (update in place)",
	NewVersion:    " (new version, rebuilt from the offline log)",
	Delete:        " (delete)",
}

// Render writes the plan for people: one line per changed object with its
// details indented below, then a summary line. Unchanged objects are only
// counted. For example:
//
//	$ featurelog plan -f features.yaml
//	+ feature view user_click_counts (new)
//	    source: impressions_event_source
//	    transform column clicked_squared: Float64 = clicked ** 2
//	~ feature view click_events_fv (update in place)
//	    ~ ttl: 7d → 3d
//
//	Plan for workspace "ads": 1 to create, 1 to update in place, 0 new versions, 0 to delete, 4 unchanged.
func (p *Plan) Render(w io.Writer) error {
	var b strings.Builder
	for _, c := range p.Changes {
		if c.Action == Unchanged {
			continue
		}
		fmt.Fprintf(&b, "%s %s %s%s\n", actionSymbol[c.Action], c.Kind, c.Name, actionNote[c.Action])
		for _, d := range c.Details {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	b.WriteString(p.summary() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// String returns the rendered plan.
func (p *Plan) String() string {
	var b strings.Builder
	_ = p.Render(&b) // a strings.Builder does not fail
	return b.String()
}

// summary counts the changes by action.
func (p *Plan) summary() string {
	if p.Empty() {
		return fmt.Sprintf("No changes: workspace %q is up to date.", p.Workspace)
	}
	n := map[Action]int{}
	for _, c := range p.Changes {
		n[c.Action]++
	}
	versions := "new versions"
	if n[NewVersion] == 1 {
		versions = "new version"
	}
	return fmt.Sprintf("Plan for workspace %q: %d to create, %d to update in place, %d %s, %d to delete, %d unchanged.",
		p.Workspace, n[Create], n[UpdateInPlace], n[NewVersion], versions, n[Delete], n[Unchanged])
}
