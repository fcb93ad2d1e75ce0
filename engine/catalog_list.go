package engine

import (
	"sort"

	"github.com/featurelog/featurelog/schema"
)

// Listing the catalog (SPEC §8): what the workspaces, feature views and
// feature services of the data directory are, for featurelog's list and
// describe commands and the HTTP listing routes.

// WorkspaceSummary describes an applied workspace.
type WorkspaceSummary struct {
	Name            string
	Sources         int
	FeatureViews    int
	FeatureServices int
}

// WorkspaceSummaries lists the applied workspaces, by name.
func (db *DB) WorkspaceSummaries() ([]WorkspaceSummary, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	cat := db.cat.Load()
	out := []WorkspaceSummary{}
	for _, name := range cat.names() {
		ws := cat.workspaces[name]
		out = append(out, WorkspaceSummary{Name: name, Sources: len(ws.sources), FeatureViews: len(ws.views), FeatureServices: len(ws.services)})
	}
	return out, nil
}

// FeatureViewSummaries returns the summaries of a workspace's views, in
// the order of its repo file.
func (db *DB) FeatureViewSummaries(workspace string) ([]*Summary, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, err
	}
	out := make([]*Summary, 0, len(ws.order))
	for _, v := range ws.order {
		out = append(out, v.summary())
	}
	return out, nil
}

// ServiceSummary describes a feature service.
type ServiceSummary struct {
	Name, Description    string
	OnlineServingEnabled bool
	// Features are the served features, <view>.<feature>, in declared
	// order, with their types (Value and the times unset).
	Features []FeatureValue
	// FeatureViews are the views the features come from, in first-seen
	// order.
	FeatureViews []string
	// JoinKeys are the keys a read must give: the union of the views'
	// join keys, in first-seen order, with their types.
	JoinKeys []schema.Column
	// Unavailable says why the service does not serve yet (a view whose
	// first version is still being backfilled); empty when it serves.
	Unavailable string
}

// FeatureServiceSummaries returns the summaries of a workspace's
// services, by name.
func (db *DB) FeatureServiceSummaries(workspace string) ([]ServiceSummary, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ws.services))
	for name := range ws.services {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]ServiceSummary, len(names))
	for i, name := range names {
		out[i] = ws.services[name].summary()
	}
	return out, nil
}

// FeatureServiceSummary returns one service's summary; unlike reads, it
// answers for a service with online serving disabled or not serving yet.
func (db *DB) FeatureServiceSummary(workspace, name string) (*ServiceSummary, error) {
	svc, err := db.lookupService(workspace, name)
	if err != nil {
		return nil, err
	}
	s := svc.summary()
	return &s, nil
}

func (svc *serviceRT) summary() ServiceSummary {
	s := ServiceSummary{Name: svc.def.Name, Description: svc.def.Description, OnlineServingEnabled: svc.def.OnlineServingEnabled,
		Features: make([]FeatureValue, len(svc.features))}
	seen := map[string]bool{}
	for i, f := range svc.features {
		s.Features[i] = FeatureValue{Name: f.name, Type: f.view.def.Features[f.idx].Type}
		if !seen[f.view.def.Name] {
			seen[f.view.def.Name] = true
			s.FeatureViews = append(s.FeatureViews, f.view.def.Name)
		}
	}
	for _, name := range svc.joinKeys {
		s.JoinKeys = append(s.JoinKeys, schema.Column{Name: name, Type: svc.joinKeyType(name)})
	}
	if svc.unavailable != nil {
		s.Unavailable = svc.unavailable.Error()
	}
	return s
}

// joinKeyType returns the type of a join key of the service's views.
func (svc *serviceRT) joinKeyType(name string) schema.Type {
	for _, f := range svc.features {
		for _, jk := range f.view.def.JoinKeys {
			if jk.Name == name {
				return jk.Type
			}
		}
	}
	return schema.Type{}
}
